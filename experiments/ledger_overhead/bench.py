"""Ledger overhead per purchase: the paid-call protocol around an annotator that answers at once.

Times ``paid_call`` (guard reservation, ledger reservation, the call, ledger and
guard settlement; with alband's per-attempt protocol also the attempt count and
the idempotency key) for ``--purchases`` items on a fresh on-disk ledger
(WAL, synchronous=FULL: each commit is an fsync), ``--repeats`` times; prints
the median microseconds per purchase as JSON. Runs against whichever alband
is on PYTHONPATH: ``alband.live.paid_call`` when it exists, else the older
``alband.loop.paid_call``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from alband.annotation import Annotation, Item
from alband.costs import Budget
from alband.store.budget_guard import BudgetGuard
from alband.store.ledger import Ledger

try:
    from alband.live.paid_call import paid_call
    PROTOCOL = "alband.live.paid_call (per-attempt rows)"
except ImportError:
    from alband.loop import paid_call
    PROTOCOL = "alband.loop.paid_call (one row per purchase)"


class InstantAnnotator:
    name = "instant"

    def max_cost_usd(self, item: Item) -> float:
        return 0.001

    def annotate(self, item: Item) -> Annotation:
        return Annotation(item.pool_index, item.item_id, self.name, item.pool_index % 3, 0.0007,
                          input_tokens=120, output_tokens=5, response_id=f"r-{item.pool_index}", raw='{"label": 1}')


def one_run(n: int, where: str | None) -> float:
    annotator = InstantAnnotator()
    with tempfile.TemporaryDirectory(dir=where) as folder, Ledger.open(Path(folder) / "ledger.sqlite", create=True) as ledger:
        guard = BudgetGuard(Budget(1e9))
        items = [Item(k, f"doc-{k}", "text") for k in range(n)]
        started = time.perf_counter()
        for item in items:
            paid_call(ledger, guard, annotator, 0, item, 0.001, guard.reserve(0.001))
        return (time.perf_counter() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--purchases", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", default=None, help="folder for the ledgers (default: the system's temp folder; "
                                                    "/dev/shm isolates the CPU cost from the fsyncs)")
    args = parser.parse_args()
    times = [one_run(args.purchases, args.dir) for _ in range(args.repeats)]
    print(json.dumps({"protocol": PROTOCOL, "dir": args.dir or tempfile.gettempdir(),
                      "purchases": args.purchases, "repeats": args.repeats,
                      "median_us_per_purchase": round(statistics.median(times) * 1e6, 1),
                      "all_us_per_purchase": [round(t * 1e6, 1) for t in times]}))


if __name__ == "__main__":
    main()
