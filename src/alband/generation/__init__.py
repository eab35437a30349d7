"""Generation of new labelled items aimed at where the learner is weak, paid through the ledger (shell).

* :mod:`.targets`: where the learner is weak (pure): the confused class pairs
  of the validation confusion matrix, the least confident unqueried pool
  items, the under-represented classes; and the plan of which label each
  requested item should carry;
* :mod:`.prompt`: the generation and self-consistency prompts, and tolerant
  parsing of their replies;
* :mod:`.filters`: what an item must pass before it is trained on (pure where
  possible): a known label, a non-empty embedding, a novelty floor against the
  pool, near-duplicate removal, the synthetic-share cap, label
  self-consistency over ``k`` samples, a second annotator's agreement;
* :mod:`.embedding`: generated texts embedded by the pool's own embedder;
* :mod:`.generator`: the :class:`~.generator.Generator` the live loop calls
  before each round's purchase, paying every call through the ledger and
  recording every item it wrote (tagged synthetic) with its verdicts.
"""
