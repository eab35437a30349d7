"""``alband report``: one row per run directory, from its metrics and ledger (shell).

Each row names the run's policy and who labelled (its ``[loop] annotator``,
or its router and the routed annotators, from the run's config copy). Under
each run, one line per annotator: settled calls (invalid answers included),
dollars and tokens, from the ledger (a routed run pays several annotators,
audits included); then, when there are any, the ledger's exceptions: attempts retried (released: not billed; charged: a timeout or
dropped connection counted in full), items skipped after their attempts
failed, calls billed above their reservation (overruns), charges that are not
labels, and orphans -- requests in flight when a run was killed, counted at
their reservation; an orphan whose item was bought again on resume may have
been billed twice by the provider (``possible_duplicates``).

A run whose ledger says ``running`` while no process holds its writer lock
was killed: its status reads ``killed``.

The plot draws test accuracy against dollars spent on a log dollar axis:
one colour per policy, one line style and marker per annotator (or
router), each (policy, annotator) pair once in the legend, so many runs
(seeds) of one pair read as one bundle of lines.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tomllib
from pathlib import Path

from alband.errors import AlbandError


def summarise_run(path: Path) -> dict:
    """Rounds, labels, dollars, accuracy and ledger counts of one run directory."""
    from alband.store.run_dir import RunDir

    run_dir = RunDir.open_existing(path)
    metrics = run_dir.read_metrics()
    try:
        return _summary(path, run_dir, metrics)
    except sqlite3.Error as err:
        raise AlbandError(f"ledger {run_dir.ledger_path}: cannot be read ({err})") from None


def _summary(path: Path, run_dir, metrics: list[dict]) -> dict:
    with run_dir.open_ledger(read_only=True) as ledger:
        rows = ledger.rows()
        by_annotator: dict[str, dict] = {}
        for row in rows:
            if row.status != "settled":
                continue
            entry = by_annotator.setdefault(row.annotator, {"annotations": 0, "invalid": 0, "cost_usd": 0.0,
                                                            "input_tokens": 0, "output_tokens": 0})
            entry["annotations"] += 1
            entry["invalid"] += 0 if row.valid else 1
            entry["cost_usd"] += row.cost_usd
            entry["input_tokens"] += row.input_tokens or 0
            entry["output_tokens"] += row.output_tokens or 0
        label_rows = [row for row in rows if row.kind == "label"]
        settled_pairs = {(row.charge_key, row.annotator) for row in label_rows if row.status == "settled"}
        orphans = [row for row in rows if row.status == "reserved"]
        status = ledger.get_meta("status", "unknown")
        if status == "running" and not _writer_alive(run_dir.ledger_path):
            status = "killed"
        summary = {
            "run_dir": str(path),
            "status": status,
            "orphans": len(orphans),
            "possible_duplicates": sum((row.charge_key, row.annotator) in settled_pairs
                                       for row in orphans if row.kind == "label"),
            "attempts_retried": {"released": sum(row.status == "released" for row in rows),
                                 "charged": sum(row.status == "charged" for row in rows)},
            "skipped": sum(row.status == "skipped" for row in rows),
            "overruns": sum(row.overrun for row in rows),
            "other_charges": {kind: round(sum(row.committed_usd for row in rows if row.kind == kind), 12)
                              for kind in sorted({row.kind for row in rows} - {"label"})},
            "error": ledger.get_meta("error"),
            "stop_reason": ledger.get_meta("stop_reason"),
            "budget_usd": ledger.get_meta("budget_limit_usd"),
            "ledger_spent_usd": ledger.spent_usd(),
            "unsettled_reservations": len(ledger.unsettled()),
            "annotators": by_annotator,
        }
    summary.update(_who(run_dir))
    last = metrics[-1] if metrics else {}
    summary.update(
        rounds=last.get("round"),
        n_labeled=last.get("n_labeled"),
        test_accuracy=last.get("test_accuracy"),
        curve={k: [m.get(k) for m in metrics] for k in ("round", "n_labeled", "spent_usd", "test_accuracy")},
    )
    return summary


def _who(run_dir) -> dict:
    """The policy and the annotator (or ``router(a, b, ...)``) named in the run's config copy."""
    try:
        raw = tomllib.loads(run_dir.config_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return {"policy": None, "annotator": None}
    policy = raw.get("policy", {}).get("name")
    routing = raw.get("routing")
    if isinstance(routing, dict):
        annotator = f"{routing.get('router')}({', '.join(map(str, routing.get('annotators', [])))})"
    else:
        annotator = raw.get("loop", {}).get("annotator") or next(iter(raw.get("annotators", {})), None)
    return {"policy": policy, "annotator": annotator}


def report(paths: list[Path], *, as_json: bool = False, plot: str | None = None) -> str:
    """The table (or JSON) of the runs in ``paths``; with ``plot``, also a PNG of accuracy vs dollars there.

    The plot's folder is checked before any run is read; a folder that is
    missing, or a file that cannot be written, is an :class:`AlbandError`
    naming the path.
    """
    if plot:
        check_plot_path(Path(plot))
    summaries = [summarise_run(p) for p in paths]
    if plot:
        _plot(summaries, Path(plot))
    if as_json:
        return json.dumps(summaries, indent=2)
    header = (f"{'run':<32} {'policy':<20} {'annotator':<20} {'status':<9} {'rounds':>6} {'labels':>6} "
              f"{'spent $':>11} {'budget $':>9} {'accuracy':>8}  stop")
    lines = [header]
    for s in summaries:
        lines.append(
            f"{s['run_dir'][-32:]:<32} {_cut(s.get('policy'), 20):<20} {_cut(s.get('annotator'), 20):<20} "
            f"{s['status']:<9} {_fmt(s['rounds'], 'd'):>6} {_fmt(s['n_labeled'], 'd'):>6} "
            f"{s['ledger_spent_usd']:>11.6f} {_fmt(s['budget_usd'], '.2f'):>9} {_fmt(s['test_accuracy'], '.4f'):>8}  "
            f"{s['stop_reason'] or '-'}"
        )
        for name, entry in sorted(s["annotators"].items()):
            lines.append(
                f"  {name:<30} {entry['annotations']:>6} calls {entry['invalid']:>4} invalid  "
                f"${entry['cost_usd']:.6f}  {entry['input_tokens']} in / {entry['output_tokens']} out tokens"
            )
        retried = s["attempts_retried"]
        notes = [f"{retried['released']} failed attempts (not billed)" if retried["released"] else "",
                 f"{retried['charged']} attempts charged in full (timeout / dropped)" if retried["charged"] else "",
                 f"{s['skipped']} items skipped" if s["skipped"] else "",
                 f"{s['overruns']} billed above their reservation" if s["overruns"] else "",
                 f"{s['orphans']} orphans (in flight at a kill, counted at their reservation; "
                 f"{s['possible_duplicates']} bought again, possibly billed twice)" if s["orphans"] else "",
                 ", ".join(f"{kind} ${usd:.6f}" for kind, usd in s["other_charges"].items())]
        notes = [note for note in notes if note]
        if notes:
            lines.append("  ledger: " + "; ".join(notes))
        if s["error"]:
            lines.append(f"  error: {s['error']}")
    if plot:
        lines.append(f"wrote {plot}")
    return "\n".join(lines)


def _cut(text: str | None, width: int) -> str:
    text = text or "-"
    return text if len(text) <= width else text[: width - 1] + "~"


def _writer_alive(ledger_path: Path) -> bool:
    """Whether a process holds the ledger's writer lock (probed with a non-blocking shared flock)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock, no way to tell
        return True
    lock = ledger_path.with_name(ledger_path.name + ".lock")
    try:
        handle = open(lock, "rb")
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def check_plot_path(path: Path) -> None:
    """Raise :class:`AlbandError` unless a PNG can be written at ``path`` (its folder exists and is writable)."""
    folder = path.parent
    if path.is_dir():
        raise AlbandError(f"--plot {path}: is a folder; give a file name such as {path / 'accuracy.png'}")
    if not folder.is_dir():
        raise AlbandError(f"--plot {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise AlbandError(f"--plot {path}: cannot write there (permission denied)")


#: Line styles and markers, one per annotator (cycled past the sixth).
_STYLES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ((0, (5, 1, 1, 1)), "v"), ((0, (1, 2)), "P"))


def _plot(summaries: list[dict], path: Path) -> None:
    """Accuracy against dollars (log axis): colour = policy, style and marker = annotator (module docstring)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = sorted({str(s.get("policy")) for s in summaries})
    annotators = sorted({str(s.get("annotator")) for s in summaries})
    colours = plt.get_cmap("tab10" if len(policies) <= 10 else "tab20")
    bundle = sum(1 for s in summaries if (s.get("policy"), s.get("annotator")) ==
                 (summaries[0].get("policy"), summaries[0].get("annotator"))) if summaries else 1
    fig, ax = plt.subplots(figsize=(9.5, 5), dpi=120)
    labelled: set[tuple[str, str]] = set()
    for s in summaries:
        pair = (str(s.get("policy")), str(s.get("annotator")))
        points = [(x, y) for x, y in zip(s["curve"]["spent_usd"], s["curve"]["test_accuracy"])
                  if x is not None and y is not None and x > 0]  # a log axis has no $0
        if not points:
            continue
        linestyle, marker = _STYLES[annotators.index(pair[1]) % len(_STYLES)]
        ax.plot(*zip(*points), color=colours(policies.index(pair[0]) % colours.N), linestyle=linestyle,
                marker=marker, markersize=3.5, linewidth=1.4, alpha=0.9 if bundle == 1 else 0.6,
                label=None if pair in labelled else f"{pair[0]} / {pair[1]}")
        labelled.add(pair)
    ax.set_xscale("log")
    ax.set_xlabel("dollars spent (log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{len(summaries)} runs: accuracy against dollars")
    ax.grid(True, which="both", alpha=0.3)
    if labelled:
        ax.legend(title="policy / annotator", fontsize=8, title_fontsize=8, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), ncol=2 if len(labelled) > 16 else 1, frameon=False)
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as err:
        raise AlbandError(f"--plot {path}: cannot write it ({err.strerror or err})") from None
    finally:
        plt.close(fig)
