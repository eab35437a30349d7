"""BudgetGuard + Ledger from several threads: the ledger never records more than the budget."""

from __future__ import annotations

import math
import tempfile
import threading
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alband.annotation import Annotation
from alband.costs.budget import Budget
from alband.errors import BudgetExhausted
from alband.store.budget_guard import BudgetGuard
from alband.store.ledger import LEDGER_FILENAME, Ledger

_SLACK = 1e-9  # float rounding of sums of a few dozen dollar amounts

# One request: (max cost reserved, fate, fraction of the reservation actually billed).
_request = st.tuples(
    st.floats(min_value=0.0, max_value=0.4, allow_nan=False),
    st.sampled_from(["settle", "release", "crash"]),
    st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    limit=st.floats(min_value=0.05, max_value=2.0, allow_nan=False),
    plans=st.lists(st.lists(_request, max_size=12), min_size=2, max_size=4),
)
def test_threads_through_guard_and_ledger_never_overspend(limit: float, plans: list) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / LEDGER_FILENAME
        guard = BudgetGuard(Budget(limit_usd=limit))
        ledger = Ledger.open(path, create=True)
        errors: list[BaseException] = []
        violations: list[float] = []

        def check() -> None:
            spent = ledger.spent_usd()
            if spent > limit + _SLACK:
                violations.append(spent)

        def worker(t: int, plan: list) -> None:
            try:
                for k, (max_cost, fate, fraction) in enumerate(plan):
                    i = 1000 * t + k
                    try:
                        reservation = guard.reserve(max_cost)
                    except BudgetExhausted:
                        continue
                    row = ledger.reserve(k, i, f"item-{i}", f"annotator-{t}", max_cost)
                    check()
                    if fate == "settle":
                        actual = max_cost * fraction
                        ledger.settle(row, Annotation(i, f"item-{i}", f"annotator-{t}", k % 2, actual))
                        guard.settle(reservation, actual)
                    elif fate == "release":
                        ledger.release(row)
                        guard.release(reservation)
                    # "crash": the row stays reserved in the ledger and in the guard.
                    check()
            except BaseException as exc:  # pragma: no cover - re-raised below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(t, plan)) for t, plan in enumerate(plans)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        assert not violations

        budget = guard.budget
        assert math.isclose(ledger.settled_usd(), budget.spent_usd, rel_tol=0, abs_tol=_SLACK)
        assert math.isclose(ledger.reserved_usd(), budget.reserved_usd, rel_tol=0, abs_tol=_SLACK)
        assert ledger.spent_usd() <= limit + _SLACK
        ledger.close()

        # After the "crash", a resumed run starts from everything committed.
        with Ledger.open(path, create=False) as resumed:
            restarted = resumed.budget(limit)
            assert math.isclose(restarted.spent_usd, budget.spent_usd + budget.reserved_usd,
                                rel_tol=0, abs_tol=_SLACK)
            assert restarted.available_usd >= -_SLACK
