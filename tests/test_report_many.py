"""``alband report`` on many runs: a policy and an annotator column, and a plot with a log dollar axis.

The run directories are written through the store (config copy, ledger,
metrics) without running the loop, so the test takes a second.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest

from alband.demo import demo_config_text
from alband.report import _plot, report, summarise_run
from alband.store.run_dir import RunDir


def _run(folder, policy: str, annotator: str, seed: int, slope: float):
    path = folder / f"{policy}-{annotator}-{seed}"
    run_dir = RunDir.create(path, demo_config_text(policy, annotator, seed=seed), budget_limit_usd=100.0)
    with run_dir.metrics_writer() as metrics:
        for r in range(4):
            metrics.append({"round": r, "n_labeled": 10 + 10 * r, "spent_usd": 0.01 * (r + 1) * slope,
                            "test_accuracy": min(1.0, 0.5 + 0.1 * r + 0.01 * seed)})
    return path


@pytest.fixture
def runs(tmp_path):
    return [_run(tmp_path, policy, annotator, seed, slope)
            for policy in ("random", "entropy") for annotator, slope in (("cheap-llm", 1.0), ("strong-llm", 20.0))
            for seed in (0, 1)]


def test_the_table_has_a_policy_and_an_annotator_column(runs):
    lines = report(runs).splitlines()
    assert lines[0].split()[:3] == ["run", "policy", "annotator"]
    rows = [line.split() for line in lines[1:] if not line.startswith("  ")]
    assert sorted((row[1], row[2]) for row in rows) == sorted(
        (p, a) for p in ("random", "entropy") for a in ("cheap-llm", "strong-llm") for _ in (0, 1))
    assert summarise_run(runs[0])["policy"] == "random"


def test_the_plot_has_a_log_dollar_axis_and_one_legend_entry_per_policy_and_annotator(runs, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    seen = {}
    close = plt.close

    def keep(fig):  # look at the figure before it is closed
        ax = fig.axes[0]
        seen["xscale"] = ax.get_xscale()
        seen["legend"] = sorted(t.get_text() for t in ax.get_legend().get_texts())
        seen["styles"] = {(line.get_color(), line.get_linestyle(), line.get_marker()) for line in ax.get_lines()}
        close(fig)

    monkeypatch.setattr(plt, "close", keep)
    _plot([summarise_run(p) for p in runs], tmp_path / "many.png")
    assert seen["xscale"] == "log"
    assert seen["legend"] == ["entropy / cheap-llm", "entropy / strong-llm", "random / cheap-llm",
                              "random / strong-llm"]
    assert len(seen["styles"]) == 4  # each (policy, annotator) pair drawn its own way
    assert (tmp_path / "many.png").stat().st_size > 1000
