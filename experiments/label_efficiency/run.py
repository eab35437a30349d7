"""Label efficiency of every registered query policy against random on AG News, TREC and Subj.

The study of the issue "Querying as bandit arms". For each dataset (the
``folder`` datasets of ``../shared/data``, MiniLM embeddings) and each query
policy, ``--seeds`` episodes are simulated in one compiled call
(:func:`alband.simulate.episode.simulate_many`, or ``simulate_seeds`` with
``--engine seeds``): 20 random seed labels, then batches of 10 up to 500
labels, the learner ``SoftmaxRegression`` with the objective of
scikit-learn's ``LogisticRegression(C=1)`` (``c=1`` with 3+ classes, ``c=0.5`` for
the binary Subj: :func:`learner_c`), labels bought from a noiseless
simulated annotator priced like a cheap LLM (token-based, so an item's price
follows its text length; the budget never binds).

Measured per dataset:

* the full-pool accuracy (the same learner fitted on every pool label; the
  script also fits scikit-learn's ``LogisticRegression(C=1)`` as a check) and
  the target, 95% of it;
* per policy and seed: test accuracy after every round, labels and dollars
  spent;
* labels (and dollars) needed to first reach the target; the normalised area
  under the accuracy-vs-labels curve (mean accuracy over 20..500 labels, step
  interpolation); accuracy at the largest dollar amount every policy reached;
* every metric as a paired-by-seed difference against random (same seed =
  same seed set), mean with a Student-t 95% interval.

Writes ``results/<dataset>.json`` (per-seed curves and timings),
``results/summary.json`` and ``results/tables.md`` (the tables of the README),
and ``plots/*.png``. Results are saved after every policy; a rerun with the
same settings skips what is already there (``--force`` recomputes the selected policies and keeps the others,
``--report-only`` only redoes tables and plots).

Run from anywhere::

    .venv/bin/python experiments/label_efficiency/run.py [--seeds 5] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parents[1]
DATASETS = ("ag_news", "trec", "subj")
DATA_ROOT = "../shared/data"  # relative to the project root, so CI and other machines find shared/ beside it

# The simulated annotator: a cheap LLM from the bundled price table, noiseless.
PRICE_MODEL = "claude-haiku-5-5"
PROMPT_TOKENS = 120  # instructions + label set per request
OUTPUT_TOKENS = 8
MAX_OUTPUT_TOKENS = 32
CHARS_PER_TOKEN = 4.0
BUDGET_USD = 1e6  # never binds: every policy buys the same number of labels

# ``per_dollar`` with its default ``base="entropy"`` is the very factory call behind ``entropy_per_dollar``.
ALIASES = {"per_dollar": "entropy_per_dollar"}
# Measured too slow for 5 seeds x 3 datasets x 48 rounds within the study's ~25 minutes (probe runs with the earlier
# learner code on the shared 2-core machine, 48 rounds, seconds per seed): on TREC go 24, lints 39 (bald 10); on
# AG News at XLA optimisation level 0 (2-4x slower than the default level on TREC) lints 221, lints_laplace 173,
# bald_per_dollar 94, bald 85. These run with fewer rounds (batches of 10 after the 20 seed labels) unless --rounds
# says otherwise. g_design (61 s per seed on TREC with its former Frank-Wolfe + rounding batch) now uses the
# regularised greedy batch and runs all 48 rounds.
SLOW_POLICY_ROUNDS = {"lints": 14, "lints_laplace": 14, "go": 24, "bald_per_dollar": 24}
# Policies whose batches fit a dollar allowance per round (they need ``round_budget_usd``).
ALLOWANCE_POLICIES = ("budgeted", "budgeted_design")

GROUPS = {
    "uncertainty": ("least_confidence", "margin", "entropy", "bald", "information_density"),
    "diversity and design": ("coreset", "badge", "g_design", "go", "d_greedy"),
    "bandits and meta-bandits": ("linucb", "lints", "lints_laplace", "greedy_linear", "albl", "meta_ts"),
    "cost-aware (per dollar)": ("entropy_per_dollar", "least_confidence_per_dollar", "margin_per_dollar",
                                "bald_per_dollar", "information_density_per_dollar", "budgeted",
                                "budgeted_design"),
}

# Measurements of REFERENCES.md (modAL 0.4.2.1, LogisticRegression(C=1), same embeddings and protocol):
# labels to first reach 95% of the full-pool accuracy, mean over 5 seeds. Not ours; quoted for comparison.
MODAL_ANCHOR = {
    "ag_news": {"full_pool": 0.878, "random": "188", "margin": "144", "least_confidence": "288",
                "entropy": "308"},
    "subj": {"full_pool": 0.920, "random": "126", "uncertainty (least confidence)": "74"},
    "trec": {"full_pool": 0.912, "random": "none <= 500 (acc. at 500: 80.2%)",
             "margin": "none <= 500 (acc. at 500: 83.4%)"},
}


def say(*parts) -> None:
    print(*parts, flush=True)


# --------------------------------------------------------------------------- data and simulation (worker side)

_TASKS: dict = {}


def load_task(name: str, pool_cap: int | None):
    """The dataset's task (cached per process)."""
    key = (name, pool_cap)
    if key not in _TASKS:
        from alband.data.spec import load_dataset
        from alband.task import Task

        spec = {"source": "folder", "path": f"{DATA_ROOT}/{name}"}
        if pool_cap:
            spec["max_train"] = int(pool_cap)
        _TASKS[key] = Task.from_dataset(load_dataset(spec, base_dir=PROJECT_ROOT))
    return _TASKS[key]


def make_annotator(n_classes: int):
    from alband.annotators.pricing_table import load_price_table
    from alband.simulate.annotator_model import make_simulated_annotator

    price = load_price_table()[PRICE_MODEL]
    return make_simulated_annotator(
        n_classes, price, flip_rate=0.0, prompt_tokens=PROMPT_TOKENS, output_tokens=OUTPUT_TOKENS,
        max_output_tokens=MAX_OUTPUT_TOKENS, chars_per_token=CHARS_PER_TOKEN,
    ), price


def item_costs(task) -> np.ndarray:
    """Dollars of annotating each pool item."""
    import jax.numpy as jnp

    from alband.simulate.annotator_model import annotation_cost_usd

    annotator, _ = make_annotator(task.n_classes)
    return np.asarray(annotation_cost_usd(annotator, jnp.asarray(task.text_chars)), np.float64)


def learner_c(n_classes: int, sklearn_c: float) -> float:
    """The ``SoftmaxRegression`` ``c`` whose fit equals scikit-learn's ``LogisticRegression(C=sklearn_c)``.

    With 3+ classes both minimise the same multinomial objective. With 2 classes scikit-learn fits one weight
    vector ``v`` with penalty ``||v||^2 / (2 C)``; the softmax fits ``w_0, w_1`` with ``(||w_0||^2 + ||w_1||^2)
    / (2 c)``, whose optimum has ``w_0 = -w_1``, so in ``v = w_1 - w_0`` the penalty is ``||v||^2 / (4 c)``:
    the same model needs ``c = C / 2`` (checked on Subj: softmax c=1 gives scikit-learn C=2's 92.5%, c=0.5
    gives C=1's 92.1%).
    """
    return float(sklearn_c) if n_classes > 2 else float(sklearn_c) / 2.0


def policy_options(name: str, settings: dict, mean_cost_usd: float, c: float) -> dict:
    """Hyper-parameters the study sets (everything else is the registered default)."""
    if name in ("bald", "bald_per_dollar") and c != 1.0:
        return {"prior_c": c}  # the Laplace prior is the learner's L2 term (bald's default 1.0 elsewhere)
    if name in ALLOWANCE_POLICIES:
        # Each round may spend what a random batch of B items costs on average.
        return {"round_budget_usd": float(settings["batch_size"] * mean_cost_usd)}
    if name == "albl":
        return {"horizon": int(settings["n_rounds"])}  # EXP4.P plans for the rounds the episode has
    return {}


def full_pool_accuracy(name: str, settings: dict) -> dict:
    """Test accuracy of the study's learner fitted on every pool label, with scikit-learn as a check."""
    import jax
    import jax.numpy as jnp

    from alband.models.softmax_regression import SoftmaxRegression, accuracy, fit, init_params

    task = load_task(name, settings["pool_cap"])
    learner = SoftmaxRegression(task.n_classes, c=learner_c(task.n_classes, settings["c"]))
    t0 = time.perf_counter()
    params = fit(learner, init_params(learner, task.x.shape[1]), jnp.asarray(task.x), jnp.asarray(task.y),
                 jnp.ones(task.n_items, jnp.float32))
    ours = float(accuracy(jax.block_until_ready(params), jnp.asarray(task.x_test), jnp.asarray(task.y_test)))
    seconds = time.perf_counter() - t0
    out = {"accuracy": ours, "learner_c": learner.c, "fit_seconds": seconds, "sklearn_accuracy": None}
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return out
    model = LogisticRegression(C=settings["c"], max_iter=5000).fit(task.x, task.y)
    out["sklearn_accuracy"] = float(model.score(task.x_test, task.y_test))
    return out


def describe_dataset(name: str, settings: dict) -> dict:
    task = load_task(name, settings["pool_cap"])
    cost = item_costs(task)
    _, price = make_annotator(task.n_classes)
    return {
        "pool": task.n_items,
        "test": int(len(task.y_test)),
        "classes": list(task.label_names),
        "dim": int(task.x.shape[1]),
        "text_chars_median": float(np.median(task.text_chars)),
        "cost_usd_mean": float(cost.mean()),
        "cost_usd_min": float(cost.min()),
        "cost_usd_median": float(np.median(cost)),
        "cost_usd_max": float(cost.max()),
        "price": {"model": PRICE_MODEL, "input_usd_per_mtok": price.input_usd_per_mtok,
                  "output_usd_per_mtok": price.output_usd_per_mtok, "usd_per_label": price.usd_per_label,
                  "prompt_tokens": PROMPT_TOKENS, "output_tokens": OUTPUT_TOKENS,
                  "max_output_tokens": MAX_OUTPUT_TOKENS, "chars_per_token": CHARS_PER_TOKEN},
        "full_pool": full_pool_accuracy(name, settings),
    }


def run_policy(name: str, policy_name: str, settings: dict, n_rounds: int) -> dict:
    """Simulate ``settings["seeds"]`` episodes of one policy on one dataset; per-seed curves and timings."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    import jax.numpy as jnp

    from alband.models.softmax_regression import SoftmaxRegression
    from alband.policies import make_policy
    from alband.simulate.episode import EpisodeConfig, simulate_many, simulate_seeds

    task = load_task(name, settings["pool_cap"])
    data = task.episode_data()
    annotator, _ = make_annotator(task.n_classes)
    mean_cost = float(item_costs(task).mean())
    c = learner_c(task.n_classes, settings["c"])
    options = policy_options(policy_name, settings, mean_cost, c)
    policy = make_policy(policy_name, **options)
    config = EpisodeConfig(SoftmaxRegression(task.n_classes, c=c), policy, settings["n_initial"],
                           settings["batch_size"], n_rounds)
    seeds = jnp.arange(settings["seed0"], settings["seed0"] + settings["seeds"], dtype=jnp.uint32)
    budget = jnp.float32(BUDGET_USD)
    if settings["engine"] == "seeds":
        lowered = simulate_seeds.lower(config, data, annotator, budget, seeds)
    else:
        lowered = simulate_many.lower(config, data, annotator, budget, seeds, 1)
    t0 = time.perf_counter()
    compiled = lowered.compile()
    compile_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    trace = jax.block_until_ready(compiled(data, annotator, budget, seeds))
    run_seconds = time.perf_counter() - t0
    return {
        "policy": policy_name,
        "options": options,
        "n_rounds": n_rounds,
        "seeds": [int(s) for s in np.asarray(seeds)],
        "n_labeled": np.asarray(trace.n_labeled).tolist(),
        "spent_usd": np.asarray(trace.spent_usd, np.float64).tolist(),
        "test_accuracy": np.asarray(trace.test_accuracy, np.float64).tolist(),
        "compile_seconds": compile_seconds,
        "run_seconds": run_seconds,
    }


def _job(kind: str, name: str, policy_name: str | None, settings: dict, n_rounds: int | None) -> dict:
    started = time.perf_counter()
    if kind == "describe":
        result = describe_dataset(name, settings)
    else:
        result = run_policy(name, policy_name, settings, n_rounds)
    result["wall_seconds"] = time.perf_counter() - started
    return result


# --------------------------------------------------------------------------- statistics (pure numpy)


def mean_ci(values) -> dict:
    """Mean and 95% Student-t half-width of the finite values (``n`` of them): :func:`alband.stats.mean_interval`."""
    from alband.stats import mean_interval

    v = np.asarray(values, np.float64)
    interval = mean_interval(v[np.isfinite(v)])
    if interval.n == 0:
        return {"mean": None, "ci95": None, "n": 0}
    return {"mean": interval.estimate, "ci95": interval.half_width, "n": interval.n}


def step_curve(xs: np.ndarray, ys: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``ys`` of the last point with ``x <= g`` for every ``g`` in ``grid`` (NaN before the first, after the last).

    ``xs`` must be non-decreasing (labels or dollars bought so far).
    """
    pos = np.searchsorted(xs, grid, side="right") - 1
    out = np.where(pos >= 0, ys[np.clip(pos, 0, None)], np.nan)
    return np.where(grid > xs[-1] * (1 + 1e-9), np.nan, out)


def first_reach(xs: np.ndarray, acc: np.ndarray, target: float) -> float:
    """The smallest ``x`` at which accuracy first reaches ``target`` (NaN if never)."""
    hit = np.flatnonzero(acc >= target)
    return float(xs[hit[0]]) if hit.size else float("nan")


def normalised_auc(grid: np.ndarray, curve: np.ndarray) -> float:
    """Trapezoid area under ``curve`` over ``grid`` divided by the grid's length: the mean accuracy."""
    if not np.all(np.isfinite(curve)):
        return float("nan")
    return float(np.trapezoid(curve, grid) / (grid[-1] - grid[0]))


def analyse(dataset: dict, settings: dict) -> dict:
    """Every metric of one dataset, per policy, with paired differences against random.

    A policy run with fewer rounds (``--rounds``) is compared with random on its own range: its label cap
    (AUC, accuracy at the cap) and its dollar range.
    """
    full = dataset["info"]["full_pool"]["accuracy"]
    target = settings["target_share"] * full
    max_labels = settings["n_initial"] + settings["batch_size"] * settings["n_rounds"]
    label_grid = np.arange(settings["n_initial"], max_labels + 1, settings["batch_size"], dtype=np.float64)
    runs = dataset["runs"]

    per_seed: dict = {}
    for name, run in runs.items():
        labels = np.asarray(run["n_labeled"], np.float64)
        spent = np.asarray(run["spent_usd"], np.float64)
        acc = np.asarray(run["test_accuracy"], np.float64)
        keep = labels <= max_labels  # policies with dollar allowances may run past the label cap
        curves = np.asarray([step_curve(lab[k], a[k], label_grid) for lab, a, k in zip(labels, acc, keep)])
        cap = float(min(lab[k][-1] for lab, k in zip(labels, keep)))
        per_seed[name] = {
            "curve": curves, "cap": cap, "full_length": run["n_rounds"] == settings["n_rounds"],
            "labels_to_target": np.asarray([first_reach(l[k], a[k], target) for l, a, k in zip(labels, acc, keep)]),
            "usd_to_target": np.asarray([first_reach(u[k], a[k], target) for u, a, k in zip(spent, acc, keep)]),
            "spent_final": np.asarray([u[k][-1] for u, k in zip(spent, keep)]),
            "labels": labels, "spent": spent, "acc": acc, "keep": keep,
        }

    def dollar_curves(p, grid):
        return np.asarray([step_curve(u[k], a[k], grid) for u, a, k in zip(p["spent"], p["acc"], p["keep"])])

    # Dollars: from the seed set's cost (the same items for every policy on a seed) to the smallest final spend
    # of any full-length policy on any seed: the range where every policy has a model at every dollar amount.
    usd_lo = max(float(np.max(p["spent"][:, 0])) for p in per_seed.values())
    usd_hi = min(float(np.min(p["spent_final"])) for p in per_seed.values() if p["full_length"])
    usd_plot_hi = max(float(np.max(p["spent_final"])) for p in per_seed.values())
    usd_plot_grid = np.linspace(usd_lo, usd_plot_hi, 300)
    for name, p in per_seed.items():
        grid = label_grid[label_grid <= p["cap"]]
        p["label_range"] = (float(grid[0]), float(grid[-1]))
        p["auc"] = np.asarray([normalised_auc(grid, c[: grid.size]) for c in p["curve"]])
        p["final"] = p["curve"][:, grid.size - 1]
        hi = min(usd_hi, float(np.min(p["spent_final"])))
        p["usd_range"] = (usd_lo, hi)
        ugrid = np.linspace(usd_lo, hi, 200)
        dc = dollar_curves(p, ugrid)
        p["usd_auc"] = np.asarray([normalised_auc(ugrid, c) for c in dc])
        p["acc_at_usd_hi"] = dc[:, -1]
        p["dollar_curve"] = dollar_curves(p, usd_plot_grid)

    base = per_seed.get("random")

    def random_on(p):
        """Random's AUC, final accuracy and dollar metrics on ``p``'s ranges (for paired differences)."""
        grid = label_grid[label_grid <= p["cap"]]
        auc = np.asarray([normalised_auc(grid, c[: grid.size]) for c in base["curve"]])
        ugrid = np.linspace(*p["usd_range"], 200)
        dc = dollar_curves(base, ugrid)
        return auc, base["curve"][:, grid.size - 1], np.asarray([normalised_auc(ugrid, c) for c in dc]), dc[:, -1]

    table: dict = {}
    for name, p in per_seed.items():
        n_seeds = p["auc"].size
        row = {
            "seeds": n_seeds,
            "n_rounds": runs[name]["n_rounds"],
            "options": runs[name]["options"],
            "label_range": p["label_range"],
            "usd_range": p["usd_range"],
            "labels_to_target": mean_ci(p["labels_to_target"]),
            "labels_to_target_per_seed": [None if not np.isfinite(v) else v for v in p["labels_to_target"]],
            "reached": int(np.isfinite(p["labels_to_target"]).sum()),
            "usd_to_target": mean_ci(p["usd_to_target"]),
            "auc": mean_ci(p["auc"]),
            "final_accuracy": mean_ci(p["final"]),
            "spent_usd_at_cap": mean_ci(p["spent_final"]),
            "usd_auc": mean_ci(p["usd_auc"]),
            "acc_at_common_usd": mean_ci(p["acc_at_usd_hi"]),
            "compile_seconds": runs[name]["compile_seconds"],
            "run_seconds": runs[name]["run_seconds"],
        }
        if base is not None and name != "random" and n_seeds == base["auc"].size:
            r_auc, r_final, r_usd_auc, r_usd_hi = random_on(p)
            both = np.isfinite(p["labels_to_target"]) & np.isfinite(base["labels_to_target"])
            row["paired_vs_random"] = {
                "auc": mean_ci(p["auc"] - r_auc),
                "final_accuracy": mean_ci(p["final"] - r_final),
                "usd_auc": mean_ci(p["usd_auc"] - r_usd_auc),
                "acc_at_common_usd": mean_ci(p["acc_at_usd_hi"] - r_usd_hi),
                "labels_to_target": mean_ci(np.where(both, p["labels_to_target"] - base["labels_to_target"],
                                                     np.nan)),
            }
        table[name] = row
    return {
        "full_pool_accuracy": full,
        "sklearn_full_pool_accuracy": dataset["info"]["full_pool"]["sklearn_accuracy"],
        "target_accuracy": target,
        "max_labels": max_labels,
        "label_grid": label_grid.tolist(),
        "usd_range": [usd_lo, usd_hi],
        "usd_plot_grid": usd_plot_grid.tolist(),
        "policies": table,
        "_per_seed": per_seed,
    }


def verdict(paired: dict | None, higher_is_better: bool = True) -> str:
    """``better`` / ``worse`` when the paired 95% interval excludes 0, else ``as random``."""
    if not paired or paired["mean"] is None or paired["n"] < 2 or not np.isfinite(paired["ci95"]):
        return "n/a"
    lo, hi = paired["mean"] - paired["ci95"], paired["mean"] + paired["ci95"]
    if lo > 0:
        return "better" if higher_is_better else "worse"
    if hi < 0:
        return "worse" if higher_is_better else "better"
    return "as random"


# --------------------------------------------------------------------------- tables and plots


def _fmt(stat: dict, scale: float = 1.0, digits: int = 1, signed: bool = False) -> str:
    if not stat or stat["mean"] is None:
        return "-"
    m = stat["mean"] * scale
    s = f"{m:+.{digits}f}" if signed else f"{m:.{digits}f}"
    if stat["n"] > 1 and stat["ci95"] is not None and np.isfinite(stat["ci95"]):
        s += f" ± {stat['ci95'] * scale:.{digits}f}"
    return s


def ordered(policies) -> list[str]:
    names = [p for group in GROUPS.values() for p in group if p in policies]
    rest = sorted(p for p in policies if p not in names and p != "random")
    return (["random"] if "random" in policies else []) + names + rest


def tables_markdown(summary: dict, settings: dict) -> str:
    lines = []
    max_labels = settings["n_initial"] + settings["batch_size"] * settings["n_rounds"]
    for name, res in summary["datasets"].items():
        info = res["info"]
        an = res["analysis"]
        pol = an["policies"]
        lines.append(f"### {name}: pool {info['pool']}, test {info['test']}, {len(info['classes'])} classes")
        lines.append("")
        sk = an["sklearn_full_pool_accuracy"]
        lines.append(
            f"Full-pool accuracy {an['full_pool_accuracy']:.2%} (SoftmaxRegression "
            f"c={learner_c(len(info['classes']), settings['c']):g} on all {info['pool']} pool "
            f"labels; scikit-learn LogisticRegression(C=1): {'n/a' if sk is None else f'{sk:.2%}'}); "
            f"target = 95% of it = {an['target_accuracy']:.2%}. Price per label: mean ${info['cost_usd_mean']:.3g} "
            f"(min ${info['cost_usd_min']:.3g}, max ${info['cost_usd_max']:.3g})."
        )
        lines.append("")
        anchor = MODAL_ANCHOR.get(name, {})
        lines.append(
            f"| policy | label cap | labels to target (mean ± CI over seeds that reached) | reached | Δ labels vs "
            f"random (paired, seeds where both reached) | AUC over 20..cap labels (%) | Δ AUC vs random (pp) | "
            f"acc. at cap (%) | Δ acc. at cap (pp) | verdict (AUC) |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        for p in ordered(pol):
            row = pol[p]
            paired = row.get("paired_vs_random", {})
            lines.append(
                f"| {p} | {row['label_range'][1]:.0f} | {_fmt(row['labels_to_target'], digits=0)} | "
                f"{row['reached']}/{row['seeds']} | "
                f"{_fmt(paired.get('labels_to_target'), digits=0, signed=True)} | {_fmt(row['auc'], 100)} | "
                f"{_fmt(paired.get('auc'), 100, signed=True)} | {_fmt(row['final_accuracy'], 100)} | "
                f"{_fmt(paired.get('final_accuracy'), 100, signed=True)} | "
                f"{'(reference)' if p == 'random' else verdict(paired.get('auc'))} |"
            )
        lines.append("")
        if anchor:
            cells = ", ".join(f"{k} {v}" for k, v in anchor.items() if k != "full_pool")
            lines.append(f"REFERENCES' modAL measurement (not ours): full pool {anchor['full_pool']:.1%}; "
                         f"labels to 95% of it: {cells}.")
            lines.append("")
        lines.append(
            f"Dollars (to {max_labels} labels; common range ${an['usd_range'][0]:.4f}–${an['usd_range'][1]:.4f}: "
            f"from the seed set's cost to the smallest spend of a full-length policy on any seed):"
        )
        lines.append("")
        lines.append("| policy | $ spent at cap | $ to target | acc. at common $ (%) | Δ vs random (pp) "
                     "| $-AUC (%) | Δ $-AUC (pp) | verdict ($-AUC) |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for p in ordered(pol):
            row = pol[p]
            paired = row.get("paired_vs_random", {})
            lines.append(
                f"| {p} | {_fmt(row['spent_usd_at_cap'], digits=4)} | {_fmt(row['usd_to_target'], digits=4)} | "
                f"{_fmt(row['acc_at_common_usd'], 100)} | {_fmt(paired.get('acc_at_common_usd'), 100, signed=True)} | "
                f"{_fmt(row['usd_auc'], 100)} | {_fmt(paired.get('usd_auc'), 100, signed=True)} | "
                f"{'(reference)' if p == 'random' else verdict(paired.get('usd_auc'))} |"
            )
        lines.append("")
        lines.append("| policy | compile s | run s (all seeds) |")
        lines.append("|---|---|---|")
        for p in ordered(pol):
            lines.append(f"| {p} | {pol[p]['compile_seconds']:.1f} | {pol[p]['run_seconds']:.1f} |")
        lines.append("")
    return "\n".join(lines)


def _band(ax, x, curves, label, color, lw=1.4, ls="-"):
    n = curves.shape[0]
    mean = curves.mean(axis=0)  # NaN where a seed has no model yet (or any more): the band ends there
    from alband.stats import t_quantile

    half = t_quantile(n) * curves.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.zeros_like(mean)
    ax.plot(x, mean, color=color, lw=lw, ls=ls, label=label)
    ax.fill_between(x, mean - half, mean + half, color=color, alpha=0.18, lw=0)


def plot_dataset(name: str, an: dict, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_seed = an["_per_seed"]
    present = [g for g, members in GROUPS.items() if any(m in per_seed for m in members)]
    others = [p for p in per_seed if p != "random" and not any(p in m for m in GROUPS.values())]
    if others or not present:
        present.append("other")
    paths = []
    for axis, key, grid, xlabel in (("labels", "curve", np.asarray(an["label_grid"]), "labels bought"),
                                    ("dollars", "dollar_curve", np.asarray(an["usd_plot_grid"]), "dollars spent (USD)")):
        cols = 2
        rows = math.ceil(len(present) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(11, 3.6 * rows), sharey=True, squeeze=False)
        for ax, group in zip(axes.flat, present):
            members = others if group == "other" else [m for m in GROUPS[group] if m in per_seed]
            colors = plt.get_cmap("tab10")
            for i, m in enumerate(members):
                _band(ax, grid, per_seed[m][key], m, colors(i % 10))
            if "random" in per_seed:
                _band(ax, grid, per_seed["random"][key], "random", "black", lw=2.0, ls="--")
            ax.axhline(an["target_accuracy"], color="grey", lw=0.8, ls=":")
            ax.axhline(an["full_pool_accuracy"], color="grey", lw=0.8)
            ax.set_title(group, fontsize=10)
            ax.set_xlabel(xlabel)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="lower right")
        for ax in axes.flat[len(present):]:
            ax.set_visible(False)
        for ax in axes[:, 0]:
            ax.set_ylabel("test accuracy")
        fig.suptitle(f"{name}: mean test accuracy with 95% CI bands ({per_seed['random'][key].shape[0]} seeds); "
                     f"solid grey = full pool, dotted = 95% of it", fontsize=10)
        fig.tight_layout()
        path = out_dir / f"{name}_accuracy_vs_{axis}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_paired(analyses: dict, out_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(analyses), figsize=(4.2 * len(analyses), 6.5), squeeze=False)
    for ax, (name, an) in zip(axes[0], analyses.items()):
        pol = an["policies"]
        names = [p for p in ordered(pol) if "paired_vs_random" in pol[p]]
        names.sort(key=lambda p: pol[p]["paired_vs_random"]["auc"]["mean"])
        y = np.arange(len(names))
        for metric, offset, color, label in (("auc", 0.17, "tab:blue", "AUC vs labels"),
                                              ("usd_auc", -0.17, "tab:orange", "AUC vs dollars")):
            m = np.array([pol[p]["paired_vs_random"][metric]["mean"] for p in names]) * 100
            h = np.array([pol[p]["paired_vs_random"][metric]["ci95"] for p in names]) * 100
            ax.errorbar(m, y + offset, xerr=h, fmt="o", ms=3.5, color=color, capsize=2, lw=1, label=label)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y)
        ax.set_yticklabels(names, fontsize=8)
        ax.set_xlabel("policy − random (pp), paired, 95% CI")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3, axis="x")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = out_dir / "paired_auc_vs_random.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- driver


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--policies", nargs="+", default=None,
                    help="default: every registered policy (aliases of another run once)")
    ap.add_argument("--skip", nargs="*", default=[], help="policies to leave out")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--seed0", type=int, default=0, help="first seed")
    ap.add_argument("--initial", type=int, default=20, help="random seed labels")
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--max-labels", type=int, default=500)
    ap.add_argument("--c", type=float, default=1.0,
                    help="the learner's inverse L2 strength as scikit-learn's LogisticRegression(C) "
                         "(SoftmaxRegression gets c = C with 3+ classes, C/2 with 2: see learner_c)")
    ap.add_argument("--pool-cap", type=int, default=None, help="subsample the pool to this many items")
    ap.add_argument("--rounds", nargs="*", default=[f"{p}={r}" for p, r in SLOW_POLICY_ROUNDS.items()],
                    metavar="POLICY=ROUNDS",
                    help="fewer rounds for policies too slow at these sizes (default: %(default)s; "
                         "pass --rounds with nothing after it to run every policy to the label cap)")
    ap.add_argument("--engine", choices=("many", "seeds"), default="many",
                    help="simulate_many (lax.map over seeds, measured faster on CPU) or simulate_seeds (vmap)")
    ap.add_argument("--xla-opt-level", type=int, default=3, choices=(0, 1, 2, 3),
                    help="XLA CPU backend optimisation level (default 3, XLA's own default): 0 compiled about 2x "
                         "faster here but ran 2-4x slower, with the same numbers")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (each compiles its own episodes)")
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--force", action="store_true", help="recompute the selected policies (all by default) even if saved; other saved runs are kept")
    ap.add_argument("--report-only", action="store_true", help="only rebuild tables and plots from saved results")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if args.xla_opt_level != 3:  # set before JAX starts; spawned workers inherit it
        flag = f"--xla_backend_optimization_level={args.xla_opt_level}"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
    started = time.perf_counter()
    from alband.policies import available_policies

    if (args.max_labels - args.initial) % args.batch:
        raise SystemExit("--max-labels minus --initial must be a multiple of --batch")
    n_rounds = (args.max_labels - args.initial) // args.batch
    settings = {"seeds": args.seeds, "seed0": args.seed0, "n_initial": args.initial, "batch_size": args.batch,
                "n_rounds": n_rounds, "c": args.c, "pool_cap": args.pool_cap, "engine": args.engine,
                "target_share": 0.95}
    registered = available_policies()
    wanted = args.policies or [p for p in registered if p not in ALIASES]
    unknown = [p for p in wanted if p not in registered]
    if unknown:
        raise SystemExit(f"unknown policies {unknown}; registered: {registered}")
    policies = [p for p in wanted if p not in set(args.skip)]
    if "random" not in policies:
        policies.insert(0, "random")
    rounds_override = {}
    for item in args.rounds:
        p, _, r = item.partition("=")
        rounds_override[p] = int(r)

    results_dir, plots_dir = args.out / "results", args.out / "plots"
    results_dir.mkdir(parents=True, exist_ok=True)
    plots_dir.mkdir(parents=True, exist_ok=True)
    say(f"label-efficiency study: datasets {args.datasets}, {len(policies)} policies, {args.seeds} seeds, "
        f"{args.initial} seed labels + {n_rounds} rounds of {args.batch}, engine {args.engine}, {args.jobs} jobs")
    if not args.policies:
        for alias, same in ALIASES.items():
            say(f"  '{alias}' (default base) is the factory call of '{same}': run once, as '{same}'")

    store: dict = {}
    for name in args.datasets:
        n_classes = len(json.loads((PROJECT_ROOT / DATA_ROOT / name / "labels.json").read_text()))
        key_settings = {k: v for k, v in settings.items() if k != "target_share"}
        key_settings["c"] = learner_c(n_classes, args.c)  # the SoftmaxRegression c of this dataset
        path = results_dir / f"{name}.json"
        saved = json.loads(path.read_text()) if path.exists() else None
        if saved and saved.get("settings") == key_settings:
            store[name] = saved
            if args.force:  # recompute the selected policies (and the pool description); keep the others
                store[name]["info"] = None
                for p in policies:
                    store[name]["runs"].pop(p, None)
        else:
            store[name] = {"settings": key_settings, "info": None, "runs": {}}

    def save(name):
        tmp = results_dir / f"{name}.json.tmp"
        tmp.write_text(json.dumps(store[name]))
        tmp.replace(results_dir / f"{name}.json")

    jobs = []
    if not args.report_only:
        for name in args.datasets:
            if store[name]["info"] is None:
                jobs.append(("describe", name, None, None))
        for name in args.datasets:
            for p in policies:
                r = rounds_override.get(p, n_rounds)
                done = store[name]["runs"].get(p)
                if done is None or done["n_rounds"] != r:
                    jobs.append(("run", name, p, r))
    # Longest first, so two workers finish together: describe jobs, then slow policies, larger pools first.
    pool_order = {"ag_news": 0, "subj": 1, "trec": 2}
    heavy = ("lints", "lints_laplace", "bald", "bald_per_dollar", "g_design", "go")
    jobs.sort(key=lambda j: (j[0] != "describe", j[2] not in heavy, heavy.index(j[2]) if j[2] in heavy else 0,
                             pool_order[j[1]]))
    say(f"{len(jobs)} jobs to run")

    def finished(job, result):
        kind, name, p, _ = job
        if kind == "describe":
            store[name]["info"] = result
            fp = result["full_pool"]
            say(f"[{time.perf_counter() - started:6.0f}s] {name}: pool {result['pool']}, test {result['test']}, "
                f"full-pool accuracy {fp['accuracy']:.4f} (sklearn {fp['sklearn_accuracy']}), "
                f"mean price ${result['cost_usd_mean']:.3g}/label")
        else:
            store[name]["runs"][p] = result
            acc = np.asarray(result["test_accuracy"])
            say(f"[{time.perf_counter() - started:6.0f}s] {name:>7} {p:<31} compile {result['compile_seconds']:5.1f}s "
                f"run {result['run_seconds']:5.1f}s  acc@end {acc[:, -1].mean():.4f}  "
                f"labels {np.asarray(result['n_labeled'])[:, -1].mean():.0f}")
        save(name)

    if jobs:
        if args.jobs <= 1:
            for job in jobs:
                finished(job, _job(job[0], job[1], job[2], settings, job[3]))
        else:
            with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
                futures = {pool.submit(_job, j[0], j[1], j[2], settings, j[3]): j for j in jobs}
                for fut in as_completed(futures):
                    job = futures[fut]
                    try:
                        finished(job, fut.result())
                    except Exception as err:  # report and carry on with the other policies
                        say(f"FAILED {job[1]} {job[2]}: {type(err).__name__}: {err}")

    summary = {"settings": settings, "datasets": {}}
    analyses = {}
    for name in args.datasets:
        if store[name]["info"] is None or "random" not in store[name]["runs"]:
            say(f"{name}: no results yet, skipped in the report")
            continue
        an = analyse(store[name], settings)
        analyses[name] = an
        plot_dataset(name, an, plots_dir)
        summary["datasets"][name] = {"info": store[name]["info"],
                                     "analysis": {k: v for k, v in an.items() if not k.startswith("_")}}
    if analyses:
        plot_paired(analyses, plots_dir)
    (results_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    (results_dir / "tables.md").write_text(tables_markdown(summary, settings))
    say(f"done in {time.perf_counter() - started:.0f} s; tables in {results_dir / 'tables.md'}, plots in {plots_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
