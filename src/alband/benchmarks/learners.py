"""``alband bench learners``: the JAX softmax regression against a scikit-learn estimator in the same simulation.

Both learners run the same config through :func:`alband.cli.simulate.simulate_config`
(the one round of :mod:`alband.rounds` in the simulator's ``lax.scan``,
seeds sequential with ``lax.map``): ``softmax_regression`` with ``c = C``
and the ``sklearn`` learner with ``LogisticRegression(C=C)``, the same
minimiser for three or more classes (binary: ``c = C / 2``;
:mod:`alband.models.softmax_regression`). Reported per learner:
``compile_seconds``, ``simulate_seconds`` and ``seconds_per_round``
(``simulate_seconds`` over seeds x rounds), the mean accuracy curve, and the
largest gap between the two curves. The scikit-learn learner fits on the host
through callbacks (:mod:`alband.models.sklearn_learner`), so its time is
NumPy's, outside ``jit``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from alband.errors import AlbandError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one readable line via AlbandError, exit code 2
        raise AlbandError(f"{self.prog}: {message}")


def learners_config(data: str | None, learner: str, *, c: float, max_train: int, rounds: int, batch_size: int,
                    initial: int, policy: str) -> str:
    """The TOML of the benchmark's config: ``data`` a ``folder`` dataset (None: the embedded BBC News)."""
    source = 'source = "bbc_news"' if data is None else f'source = "folder"\npath = {json.dumps(str(data))}'
    learners = {
        "softmax_regression": f"c = {c!r}",
        "sklearn": ('name = "sklearn"\nestimator = "sklearn.linear_model:LogisticRegression"\n'
                    f"params = {{C = {c!r}, max_iter = 1000, tol = 1e-6}}"),
    }
    return (f"[data]\n{source}\nmax_train = {max_train}\n\n[learner]\n{learners[learner]}\n\n"
            f'[policy]\nname = "{policy}"\n\n[loop]\nbatch_size = {batch_size}\nrounds = {rounds}\n'
            f"initial_labels = {initial}\nseed = 0\n\n[budget]\nusd = 1000.0\n\n"
            '[annotators.gold]\nkind = "simulated"\nusd_per_label = 0.001\nflip_rate = 0.0\n')


def bench_learners(data: str | None = None, *, seeds: int = 2, rounds: int = 8, batch_size: int = 10,
                   initial: int = 10, max_train: int = 1000, c: float = 1.0, policy: str = "entropy",
                   progress: bool = False) -> dict[str, Any]:
    """Time both learners on the same simulated experiment (module docstring)."""
    from alband.cli.simulate import simulate_config
    from alband.config import parse_config

    base = Path(data).resolve() if data is not None else None
    if base is not None and not (base / "data.jsonl").is_file():
        raise AlbandError(f"bench learners: --data {data}: no data.jsonl (a ../shared/data/<dataset> folder)")
    results = []
    for name in ("softmax_regression", "sklearn"):
        text = learners_config(None if base is None else str(base), name, c=c, max_train=max_train, rounds=rounds,
                               batch_size=batch_size, initial=initial, policy=policy)
        out = simulate_config(parse_config(text, source=f"bench learners ({name})"), seeds=seeds, progress=progress)
        results.append({"learner": name, "compile_seconds": out["compile_seconds"],
                        "simulate_seconds": out["simulate_seconds"],
                        "seconds_per_round": out["simulate_seconds"] / (seeds * rounds),
                        "test_accuracy_mean": out["test_accuracy_mean"]})
    jax_row, sk_row = results
    gap = np.max(np.abs(np.subtract(jax_row["test_accuracy_mean"], sk_row["test_accuracy_mean"])))
    return {"benchmark": "learners", "data": "bbc_news" if base is None else str(base), "seeds": seeds,
            "rounds": rounds, "batch_size": batch_size, "max_train": max_train, "c": c, "policy": policy,
            "results": results, "max_accuracy_gap": float(gap),
            "sklearn_slowdown": sk_row["seconds_per_round"] / jax_row["seconds_per_round"],
            "machine": _machine()}


def _machine() -> dict[str, Any]:
    from alband.benchmarks.design import machine_info

    return machine_info()


def bench_learners_main(argv: list[str]) -> int:
    """``alband bench learners [--data FOLDER] [--seeds S] [--rounds R] ... [--json]``."""
    p = _Parser(prog="alband bench learners",
                description="The JAX softmax regression vs scikit-learn's LogisticRegression as the learner of "
                            "the same simulation: seconds per round (seeds sequential), accuracy curves.")
    p.add_argument("--data", default=None, help="a ../shared/data/<dataset> folder (default: BBC News, embedded)")
    p.add_argument("--seeds", type=int, default=2, help="episodes, run one after another (default 2)")
    p.add_argument("--rounds", type=int, default=8, help="rounds per episode (default 8)")
    p.add_argument("--batch-size", type=int, default=10, help="labels bought per round (default 10)")
    p.add_argument("--initial", type=int, default=10, help="random seed labels (default 10)")
    p.add_argument("--max-train", type=int, default=1000, help="pool size cap (default 1000)")
    p.add_argument("--c", type=float, default=1.0, help="inverse L2 strength, c = C (default 1.0)")
    p.add_argument("--policy", default="entropy", help="query policy (default entropy)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no 'compiling ...' lines and no progress bar")
    args = p.parse_args(argv)
    if min(args.seeds, args.rounds, args.batch_size, args.initial, args.max_train) < 1 or not args.c > 0:
        raise AlbandError("bench learners: --seeds, --rounds, --batch-size, --initial, --max-train must be >= 1 "
                          "and --c > 0")
    result = bench_learners(args.data, seeds=args.seeds, rounds=args.rounds, batch_size=args.batch_size,
                            initial=args.initial, max_train=args.max_train, c=args.c, policy=args.policy,
                            progress=not args.quiet)
    if args.json:
        print(json.dumps(result, indent=2, default=float))
    else:
        for row in result["results"]:
            print(f"{row['learner']:<20} seconds_per_round={row['seconds_per_round']:.4f}  "
                  f"compile_seconds={row['compile_seconds']:.2f}  final_accuracy={row['test_accuracy_mean'][-1]:.4f}")
        print(f"sklearn_slowdown={result['sklearn_slowdown']:.1f}x  max_accuracy_gap={result['max_accuracy_gap']:.4f}")
    return 0


__all__ = ["bench_learners", "bench_learners_main", "learners_config"]
