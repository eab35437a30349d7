"""``alband sweep report DIR``: tables and plots from a sweep's stored rows alone (shell).

Per cell and seed ``s``, from the curves of round ``r = 0..R`` (test accuracy
``a_sr``, labels ``n_sr``, dollars ``d_sr``):

* final accuracy ``a_sR``;
* AUC: the area under accuracy against labels divided by the labels' span,
  ``sum_r (n_s,r+1 - n_sr)(a_sr + a_s,r+1) / 2 / (n_sR - n_s0)`` -- the mean
  accuracy over the labels bought (ALiPy's and scikit-activeml's learning-curve
  area, normalised so cells with different budgets compare);
* labels (dollars) to target: ``n_sr`` (``d_sr``) at the first round with
  ``a_sr >= target``, missing when the seed never reaches it;
* stop regret: the stopping rule's cost regret in dollars against the
  hindsight-optimal round (:mod:`alband.stopping`; ``simulate``'s cost model).

Each cell gets the mean and Student-t interval of each metric over its seeds
(:func:`alband.stats.mean_interval`) and the Wilson interval of the share of
seeds that reached the target; against the baseline cell -- the cell with the
baseline's value on the baseline's axis and the same value on every other
axis -- the mean paired difference over the seeds both ran, with its Student-t
interval (:func:`alband.stats.paired_interval`). Seeds missing a value (the
target not reached) drop out of that pair.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from alband.errors import AlbandError
from alband.stats import mean_interval, paired_interval, wilson_interval
from alband.sweep.store import DONE, ResultStore

DEFAULT_RULE = "stabilizing_predictions"
#: Without a target, the target of a panel is this share of its best final mean accuracy.
DEFAULT_TARGET_SHARE = 0.95
METRICS = ("final_accuracy", "auc", "labels_to_target", "dollars_to_target", "stop_regret_usd")


def seed_metrics(row: dict[str, Any], target: float, rule: str) -> dict[str, np.ndarray]:
    """Every metric of the module docstring, one value per seed of ``row`` (NaN where missing)."""
    curves = row["result"]["curves"]
    acc = np.asarray(curves["test_accuracy"], np.float64)
    labels = np.asarray(curves["n_labeled"], np.float64)
    dollars = np.asarray(curves["spent_usd"], np.float64)
    span = labels[:, -1] - labels[:, 0]
    area = np.sum(np.diff(labels, axis=1) * (acc[:, 1:] + acc[:, :-1]) / 2, axis=1)
    auc = np.where(span > 0, area / np.where(span > 0, span, 1.0), acc[:, -1])
    reached = acc >= target
    first = np.argmax(reached, axis=1)
    hit = reached.any(axis=1)
    rows = np.arange(len(acc))
    stops = row["result"]["stops"]
    if rule not in stops:
        raise AlbandError(f"sweep report: cell '{row['name']}' has no stopping rule '{rule}' "
                          f"(rules: {', '.join(stops)})")
    regret = np.asarray(stops[rule]["regret_usd"], np.float64)
    return {
        "final_accuracy": acc[:, -1],
        "auc": auc,
        "labels_to_target": np.where(hit, labels[rows, first], np.nan),
        "dollars_to_target": np.where(hit, dollars[rows, first], np.nan),
        "stop_regret_usd": regret,
    }


def _rule_of(row: dict[str, Any], rule: str | None) -> str:
    if rule:
        return rule
    configured = [r["rule"] for r in row["result"].get("rules", []) if r.get("configured")]
    return configured[0] if configured else DEFAULT_RULE


def _parse_baseline(baseline: str | None, axes: list[str]) -> tuple[str, str] | None:
    if not baseline:
        return None
    axis, sep, value = baseline.partition("=")
    if not sep or not axis or not value:
        raise AlbandError(f"sweep report: --baseline must be AXIS=VALUE (e.g. policy.name=random), got '{baseline}'")
    if axis not in axes:
        raise AlbandError(f"sweep report: baseline axis '{axis}' is not an axis of the sweep ({', '.join(axes)})")
    return axis, value


def _panel_axis(rows: list[dict[str, Any]], axes: list[str], panel: str | None) -> str | None:
    """The axis named by ``panel``, else the first axis whose value alone decides the rows' ``[data]``."""
    if panel:
        if panel not in axes:
            raise AlbandError(f"sweep report: panel axis '{panel}' is not an axis of the sweep ({', '.join(axes)})")
        return panel
    for axis in axes:
        data_of: dict[str, set[str]] = defaultdict(set)
        for row in rows:
            if axis in row["coordinates"]:
                data_of[row["coordinates"][axis]].add(json.dumps(row["config"].get("data"), sort_keys=True))
        if len(data_of) > 1 and all(len(v) == 1 for v in data_of.values()) \
                and len({next(iter(v)) for v in data_of.values()}) > 1:
            return axis
    return None


def load_rows(directory: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """The done rows, the failed rows and ``sweep.json`` of a results folder."""
    store = ResultStore(directory)
    rows = list(store.rows())
    done = [r for r in rows if r.get("status") == DONE]
    failed = [r for r in rows if r.get("status") != DONE]
    return done, failed, store.description()


def sweep_report(directory: str | Path, *, baseline: str | None = None, target: float | None = None,
                 rule: str | None = None, panel: str | None = None) -> dict[str, Any]:
    """The report of the rows in ``directory``: per panel, per cell, each metric with its intervals."""
    done, failed, description = load_rows(directory)
    if not done:
        raise AlbandError(f"{directory}: no completed cells to report" + (f" ({len(failed)} failed)" if failed else ""))
    defaults = description.get("report", {})
    axes = [a["name"] for a in description.get("axes", [])]
    for row in done:
        axes.extend(a for a in row["coordinates"] if a not in axes)
    base = _parse_baseline(baseline or defaults.get("baseline"), axes)
    target = target if target is not None else defaults.get("target")
    rule = rule or defaults.get("rule")
    if target is not None and not 0 < target <= 1:
        raise AlbandError(f"sweep report: --target must be an accuracy in (0, 1], got {target}")
    panel_axis = _panel_axis(done, axes, panel or defaults.get("panel"))
    order = {c["cell"]: i for i, c in enumerate(description.get("cells", []))}
    done.sort(key=lambda r: (order.get(r["cell"], len(order)), r["name"]))

    panels: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in done:
        panels["all" if panel_axis is None else row["coordinates"].get(panel_axis, "(none)")].append(row)
    report_panels = []
    for panel_value, rows in panels.items():
        panel_target = target
        if panel_target is None:
            best = max(float(np.mean(np.asarray(r["result"]["curves"]["test_accuracy"])[:, -1])) for r in rows)
            panel_target = DEFAULT_TARGET_SHARE * best
        values = {r["cell"]: (r["seeds"], seed_metrics(r, panel_target, _rule_of(r, rule))) for r in rows}
        cells = []
        for row in rows:
            seeds, metrics = values[row["cell"]]
            entry = {"cell": row["cell"], "name": row["name"], "coordinates": row["coordinates"], "seeds": len(seeds),
                     "rule": _rule_of(row, rule),
                     "metrics": {m: mean_interval(metrics[m]).to_dict() for m in METRICS},
                     "reached_target": wilson_interval(int(np.sum(np.isfinite(metrics["labels_to_target"]))),
                                                       len(seeds)).to_dict()}
            partner = _partner(row, rows, base)
            if partner is not None and partner["cell"] != row["cell"]:
                entry["baseline"] = partner["name"]
                entry["vs_baseline"] = _paired(values[row["cell"]], values[partner["cell"]])
            cells.append(entry)
        report_panels.append({"panel": panel_value, "target_accuracy": panel_target, "cells": cells})
    return {
        "directory": str(directory),
        "name": description.get("name", Path(directory).name),
        "panel_axis": panel_axis,
        "baseline": None if base is None else f"{base[0]}={base[1]}",
        "panels": report_panels,
        "failed": [{"cell": r["cell"], "name": r["name"], "error": (r.get("error") or {}).get("message")} for r in failed],
    }


def _partner(row: dict[str, Any], rows: list[dict[str, Any]], base: tuple[str, str] | None) -> dict | None:
    if base is None or base[0] not in row["coordinates"]:
        return None
    wanted = {**row["coordinates"], base[0]: base[1]}
    return next((r for r in rows if r["coordinates"] == wanted), None)


def _paired(cell: tuple[list[int], dict[str, np.ndarray]], baseline: tuple[list[int], dict[str, np.ndarray]]) -> dict:
    """Mean paired difference (cell - baseline) of each metric over the seeds both ran."""
    seeds_a, a = cell
    seeds_b, b = baseline
    common = sorted(set(seeds_a) & set(seeds_b))
    ia = [seeds_a.index(s) for s in common]
    ib = [seeds_b.index(s) for s in common]
    return {m: paired_interval(a[m][ia], b[m][ib]).to_dict() for m in METRICS}


def _fmt(interval: dict[str, Any], digits: int, signed: bool = False) -> str:
    est, lo, hi = interval["estimate"], interval["low"], interval["high"]
    if est is None or not np.isfinite(est):
        return "-"
    sign = "+" if signed else ""
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{est:{sign}.{digits}f}"
    return f"{est:{sign}.{digits}f} [{lo:{sign}.{digits}f}, {hi:{sign}.{digits}f}]"


def format_report(report: dict[str, Any]) -> str:
    """The report as text: one table per panel, then the paired differences against the baseline."""
    lines = [f"sweep {report['name']} ({report['directory']}): means over seeds with Student-t 95% intervals"]
    for panel in report["panels"]:
        title = "all cells" if report["panel_axis"] is None else f"{report['panel_axis']}={panel['panel']}"
        w = max([4] + [len(_short(c["name"], report, panel)) for c in panel["cells"]])
        lines += ["", f"{title}: target accuracy {panel['target_accuracy']:.4f}",
                  f"{'cell':<{w}} {'seeds':>5}  {'final accuracy':<24} {'AUC':<24} {'reached':>7}  "
                  f"{'labels to target':<24} {'dollars to target':<30} {'stop regret $':<30}"]
        for cell in panel["cells"]:
            m = cell["metrics"]
            lines.append(f"{_short(cell['name'], report, panel):<{w}} {cell['seeds']:>5}  "
                         f"{_fmt(m['final_accuracy'], 3):<24} {_fmt(m['auc'], 3):<24} "
                         f"{cell['reached_target']['estimate']:>7.0%}  {_fmt(m['labels_to_target'], 0):<24} "
                         f"{_fmt(m['dollars_to_target'], 4):<30} {_fmt(m['stop_regret_usd'], 4):<30}")
        compared = [c for c in panel["cells"] if "vs_baseline" in c]
        if compared:
            lines.append(f"minus the baseline ({report['baseline']}), paired by seed:")
            for cell in compared:
                d = cell["vs_baseline"]
                lines.append(f"  {_short(cell['name'], report, panel):<{w}} final {_fmt(d['final_accuracy'], 3, True)}"
                             f"  AUC {_fmt(d['auc'], 3, True)}  labels {_fmt(d['labels_to_target'], 0, True)}"
                             f"  dollars {_fmt(d['dollars_to_target'], 4, True)}"
                             f"  regret {_fmt(d['stop_regret_usd'], 4, True)}")
    rules = sorted({c["rule"] for p in report["panels"] for c in p["cells"]})
    lines.append("")
    lines.append(f"(reached: share of seeds reaching the target; labels and dollars to target over those seeds; "
                 f"stop regret of {', '.join(rules)})")
    for row in report["failed"]:
        lines.append(f"failed: {row['name']} ({row['cell']}): {row['error']}")
    return "\n".join(lines)


def _short(name: str, report: dict[str, Any], panel: dict[str, Any]) -> str:
    """A cell's name without the panel's coordinate (the panel's title says it)."""
    if report["panel_axis"] is None:
        return name
    return " ".join(p for p in name.split(" ") if p != f"{report['panel_axis']}={panel['panel']}") or name


def plot_report(directory: str | Path, report: dict[str, Any], path: str | Path) -> Path:
    """Accuracy against labels (top) and against dollars (bottom), one column per panel, bands = 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done, _, _ = load_rows(directory)
    by_cell = {r["cell"]: r for r in done}
    n = len(report["panels"])
    fig, axes = plt.subplots(2, n, figsize=(5 * n, 7), squeeze=False)
    for j, panel in enumerate(report["panels"]):
        for cell in panel["cells"]:
            curves = by_cell[cell["cell"]]["result"]["curves"]
            acc = np.asarray(curves["test_accuracy"], np.float64)
            intervals = [mean_interval(column) for column in acc.T]
            mean = np.array([i.estimate for i in intervals])
            half = np.nan_to_num(np.array([i.half_width for i in intervals]))
            label = _short(cell["name"], report, panel)
            for i, key in enumerate(("n_labeled", "spent_usd")):
                x = np.asarray(curves[key], np.float64).mean(axis=0)
                axes[i, j].plot(x, mean, label=label)
                axes[i, j].fill_between(x, mean - half, mean + half, alpha=0.2)
        title = "all cells" if report["panel_axis"] is None else f"{report['panel_axis']}={panel['panel']}"
        axes[0, j].set_title(title)
        axes[0, j].set_xlabel("labels")
        axes[1, j].set_xlabel("dollars spent")
        for i in range(2):
            axes[i, j].set_ylabel("test accuracy")
            axes[i, j].axhline(panel["target_accuracy"], color="grey", lw=0.8, ls=":")
        axes[0, j].legend(fontsize=7)
    fig.suptitle(f"sweep {report['name']}: mean over seeds, 95% Student-t bands")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def full_pool_accuracy(row: dict[str, Any], base_dir: str | Path) -> float:
    """Test accuracy of a stored row's learner fitted on every pool label (gold) of its dataset.

    The reference a study's "labels to X% of the full pool" target is a share
    of. ``base_dir``: the folder the row's config paths are relative to (the
    sweep spec's folder).
    """
    import jax.numpy as jnp

    from alband.config import parse_config
    from alband.models.softmax_regression import accuracy, fit, init_params
    from alband.runner import load_task, loop_settings

    config = parse_config(row["config_text"], source=row["name"], base_dir=Path(base_dir))
    task = load_task(config, quiet=True)
    learner = loop_settings(config, task).learner
    params = fit(learner, init_params(learner, task.x.shape[1]), jnp.asarray(task.x), jnp.asarray(task.y),
                 jnp.ones(task.n_items, jnp.float32))
    return float(accuracy(params, jnp.asarray(task.x_test), jnp.asarray(task.y_test)))


def fill_readme_section(readme: str | Path, text: str, tag: str = "report.py") -> None:
    """Put ``text`` between ``<!-- TAG: begin -->`` and ``<!-- TAG: end -->`` in ``readme`` (a study's generated
    section); an error naming the file when the markers are missing."""
    import re

    readme = Path(readme)
    begin, end = f"<!-- {tag}: begin -->", f"<!-- {tag}: end -->"
    old = readme.read_text()
    if begin not in old or end not in old:
        raise AlbandError(f"{readme}: no '{begin}' ... '{end}' section to fill")
    readme.write_text(re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: f"{begin}\n{text}{end}", old,
                             flags=re.S))
