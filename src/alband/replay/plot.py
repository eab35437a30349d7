"""Accuracy-versus-dollars frontier of every router (budget sweep) against every single model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alband.errors import AlbandError

_STYLE = {
    "always-cheapest": dict(color="0.6", ls=":", marker=None),
    "always-strongest": dict(color="0.3", ls=":", marker=None),
    "best-fixed": dict(color="0.0", ls="--", marker=None),
    "random": dict(color="tab:gray", ls="-", marker="."),
    "cascade": dict(color="tab:orange", ls="-", marker="s"),
    "contextual_ts": dict(color="tab:blue", ls="-", marker="o"),
    "bts": dict(color="tab:green", ls="-", marker="^"),
    "ucb_bv": dict(color="tab:purple", ls="-", marker="v"),
    "oracle": dict(color="tab:red", ls="-.", marker=None),
}


def plot_frontier(report: dict[str, Any], path, title: str | None = None) -> Path:
    """Write the frontier PNG: x = dollars spent (log), y = stream accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.parent and not path.parent.exists():
        raise AlbandError(f"{path}: folder {path.parent} does not exist")
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    for r in report["routers"]:
        pts = sorted((p["cost_usd"], p["stream_accuracy"]) for p in r["curve"] if p["cost_usd"] > 0)
        if not pts:
            continue
        xs, ys = zip(*pts)
        style = dict(_STYLE.get(r["name"], {}))
        if r["name"] == "best-fixed":  # a frontier of single models: no mixing between points
            style["drawstyle"] = "steps-post"
        ax.plot(xs, ys, label=r["name"], lw=1.4, ms=3.5, **style)
    for f in report["fixed_models"]:
        if f["cost_usd"] <= 0:
            continue
        ax.scatter([f["cost_usd"]], [f["stream_accuracy"]], s=22, color="k",
                   marker="*" if f["human"] else "x", zorder=5)
        ax.annotate(f["name"], (f["cost_usd"], f["stream_accuracy"]), fontsize=6.5,
                    xytext=(3, 2), textcoords="offset points")
    strong = report["strongest"]
    ax.axhline(0.95 * strong["accuracy"], color="tab:red", lw=0.8, ls=":",
               label=f"95% of {strong['name']}")
    ax.set_xscale("log")
    ax.set_xlabel("dollars spent on the stream (log scale)")
    ax.set_ylabel("stream accuracy (right labels / items)")
    n = report["data"]["n_items"]
    ax.set_title(title or f"Router frontier, {n} items, {report['seeds']} seeds")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
