"""Query policies for preference pairs (pool rows are pair features ``z = phi(a) - phi(b)``).

Each module states its math and paper; importing this package registers:
``random_pairs``, ``pair_uncertainty``, ``pair_bald``, ``apo``,
``pair_d_design``, ``pair_g_design``, ``dope``, ``double_ts``, ``bal_pm``,
``gated``. Their pure functions take explicit arrays; the adapters read the
round context's ``x`` (pair features), ``probs`` (column 0 = P(first
preferred)), ``params.theta``, ``posterior`` (the learner's Laplace posterior)
and ``aux`` (:class:`~alband.policies.preference.aux.PairAux`).
"""

from alband.policies.preference import (  # noqa: F401  (registration)
    apo,
    bal_pm,
    d_design,
    double_ts,
    dope,
    g_design,
    gated,
    information_gain,
    random_pairs,
    uncertainty,
)
from alband.policies.preference.aux import PairAux, make_pair_aux, pair_differences

__all__ = ["PairAux", "make_pair_aux", "pair_differences"]
