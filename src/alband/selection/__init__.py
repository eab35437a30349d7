"""Selection of the items to label by an LLM shown a numbered shortlist (ActiveLLM, SelectLLM) (shell).

* :mod:`.candidates`: the ``n`` candidates it is shown (uniform, a registered
  policy's shortlist, one per k-means cluster), shuffled with the run's key;
* :mod:`.prompt`: the prompt (plain or chain-of-thought, with or without the
  label set);
* :mod:`.reply`: tolerant parsing of ``{"indices": [...], "reasons": "..."}``
  and the repair of repeated, out-of-range and non-integer indices;
* :mod:`.llm_selector`: the :class:`~.llm_selector.Selector` the live loop
  calls between ``before_buy`` and the purchase, paying through the ledger;
* :mod:`.replay`: recorded selections (from a ledger or a cache file) as the
  simulator's per-round indices.
"""
