"""``alband demo``: random vs entropy sampling on BBC News with three priced annotators.

The demo answers the question the project exists for -- what does a label
policy buy per dollar, and from whom? -- on a real corpus that ships with the
package (BBC News, 2,225 articles, 5 topics, TF-IDF + SVD embeddings):

* annotators: a cheap LLM (noisy, cents per thousand labels), a strong LLM
  (less noisy, ~15x the price) and a human-priced gold oracle (a flat fee per label);
* policies: random and entropy sampling;
* every (policy, annotator) pair is simulated over ``seeds`` seeds (20 by
  default) in one compiled call (:func:`alband.simulate.simulate_many`); seed 0 of each pair is also run through the live
  loop with a SQLite ledger, and the demo checks that it bought exactly the
  items the simulator predicted.

Writes ``results.json``, ``accuracy_vs_dollars.png`` and one run directory per
pair (``runs/<policy>-<annotator>/``) to the output folder, and prints a table.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np

from alband.stats import mean_interval

DEMO_ANNOTATORS = {
    # name: (toml table body, colour)
    "cheap-llm": ('kind = "simulated"\ninput_usd_per_mtok = 0.15\noutput_usd_per_mtok = 0.60\n'
                  'flip_rate = 0.20\nprompt_tokens = 120\noutput_tokens = 8\nmax_output_tokens = 32', "tab:green"),
    "strong-llm": ('kind = "simulated"\ninput_usd_per_mtok = 3.0\noutput_usd_per_mtok = 15.0\n'
                   'flip_rate = 0.05\nprompt_tokens = 120\noutput_tokens = 8\nmax_output_tokens = 32', "tab:blue"),
    "human": ('kind = "simulated"\nusd_per_label = 0.40\nflip_rate = 0.0', "tab:red"),
}
DEMO_POLICIES = ("random", "entropy")


def demo_config_text(policy: str, annotator: str, *, seed: int = 0, rounds: int = 15,
                     batch_size: int = 10, initial_labels: int = 10, budget_usd: float = 100.0) -> str:
    """The TOML config of one demo run (also a template for users' own configs)."""
    tables = "\n\n".join(f"[annotators.{name}]\n{body}" for name, (body, _) in DEMO_ANNOTATORS.items())
    return f"""# alband demo: {policy} sampling, labels bought from {annotator}
[data]
source = "bbc_news"

[learner]
c = 1.0

[policy]
name = "{policy}"

[loop]
batch_size = {batch_size}
rounds = {rounds}
initial_labels = {initial_labels}
seed = {seed}
annotator = "{annotator}"

[budget]
usd = {budget_usd}

{tables}
"""


def _mean_ci(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``values`` (seeds x rounds): the mean and the half-width of its Student-t 95% interval."""
    intervals = [mean_interval(column) for column in np.asarray(values, np.float64).T]
    return np.array([i.estimate for i in intervals]), np.array([i.half_width for i in intervals])


def run_demo(out: Path, *, seeds: int = 20, rounds: int = 15, quiet: bool = False) -> dict:
    import jax
    import jax.numpy as jnp

    from alband.config import parse_config
    from alband.runner import load_task, loop_settings, simulated_annotator_model, start_run
    from alband.cpu_threads import one_blas_thread
    from alband.simulate.episode import EpisodeConfig, simulate_many

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))

    base = parse_config(demo_config_text("random", "cheap-llm", rounds=rounds), source="demo")
    t0 = time.perf_counter()
    task = load_task(base)
    say(f"BBC News: {task.n_items} pool articles, {len(task.y_test)} test, {task.n_classes} topics, "
        f"d={task.x.shape[1]} (loaded in {time.perf_counter() - t0:.1f} s)")
    data = task.episode_data()
    seed_array = jnp.arange(seeds)

    results: dict = {"pairs": {}, "seeds": seeds, "rounds": rounds}
    for policy_name in DEMO_POLICIES:
        for annotator_name in DEMO_ANNOTATORS:
            config = parse_config(demo_config_text(policy_name, annotator_name, rounds=rounds), source="demo")
            settings = loop_settings(config, task)
            model = simulated_annotator_model(config.annotators[annotator_name], task.n_classes)
            episode = EpisodeConfig(settings.learner, settings.policy, settings.n_initial,
                                    settings.batch_size, settings.n_rounds)
            t0 = time.perf_counter()
            with one_blas_thread():  # as start_run below (alband.cpu_threads)
                trace = jax.block_until_ready(simulate_many(episode, data, model, config.budget_usd, seed_array))
            sim_seconds = time.perf_counter() - t0

            t0 = time.perf_counter()
            run_path = out / "runs" / f"{policy_name}-{annotator_name}"
            events = start_run(config, run_path, quiet=True)
            live_seconds = time.perf_counter() - t0
            live_items = [i for e in events[1:] for i, a in zip(e.proposed, e.accepted) if a]
            sim_items = np.asarray(trace.query_index[0])[np.asarray(trace.query_accepted[0])].tolist()
            same = live_items == sim_items[: len(live_items)] and len(live_items) == len(sim_items)

            accuracy = np.asarray(trace.test_accuracy)
            spent = np.asarray(trace.spent_usd, np.float64)
            labels = np.asarray(trace.n_labeled)
            acc_mean, acc_ci = _mean_ci(accuracy)
            results["pairs"][f"{policy_name}/{annotator_name}"] = {
                "policy": policy_name,
                "annotator": annotator_name,
                "labels": labels.mean(axis=0).tolist(),
                "spent_usd": spent.mean(axis=0).tolist(),
                "accuracy_mean": acc_mean.tolist(),
                "accuracy_ci95": acc_ci.tolist(),
                "final_accuracy_per_seed": accuracy[:, -1].tolist(),
                "final_spent_usd_per_seed": spent[:, -1].tolist(),
                "simulate_seconds": sim_seconds,
                "live_run_seconds": live_seconds,
                "live_run_dir": str(run_path),
                "live_matches_simulation": bool(same),
            }
            say(f"  {policy_name:>8} / {annotator_name:<10} simulated {seeds} seeds in {sim_seconds:5.1f} s, "
                f"live seed 0 in {live_seconds:4.1f} s (same items as simulated: {'yes' if same else 'NO'})")

    results["paired_entropy_minus_random"] = _paired_differences(results)
    results["wall_seconds"] = time.perf_counter() - started
    results["machine"] = machine_info()
    plot_path = out / "accuracy_vs_dollars.png"
    plot_accuracy_vs_dollars(results, plot_path)
    results["plot"] = str(plot_path)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    say("")
    say(format_table(results))
    say(f"\nwrote {plot_path}, {out / 'results.json'} and {len(results['pairs'])} run directories under {out / 'runs'}"
        f" in {results['wall_seconds']:.0f} s")
    return results


def _paired_differences(results: dict) -> dict:
    """Entropy minus random, per annotator: final accuracy and accuracy per dollar, paired by seed."""
    out = {}
    for annotator in DEMO_ANNOTATORS:
        ent = results["pairs"][f"entropy/{annotator}"]
        ran = results["pairs"][f"random/{annotator}"]
        acc_diff = np.subtract(ent["final_accuracy_per_seed"], ran["final_accuracy_per_seed"])
        per_dollar = (np.divide(ent["final_accuracy_per_seed"], ent["final_spent_usd_per_seed"])
                      - np.divide(ran["final_accuracy_per_seed"], ran["final_spent_usd_per_seed"]))
        accuracy = mean_interval(acc_diff)
        dollars = mean_interval(per_dollar)
        out[annotator] = {
            "final_accuracy_diff": accuracy.estimate, "final_accuracy_diff_ci95": accuracy.half_width,
            "final_accuracy_diff_interval": accuracy.to_dict(),
            "accuracy_per_dollar_diff": dollars.estimate, "accuracy_per_dollar_diff_ci95": dollars.half_width,
            "accuracy_per_dollar_diff_interval": dollars.to_dict(),
        }
    return out


def format_table(results: dict) -> str:
    rows = [f"{'policy':<8} {'annotator':<11} {'labels':>6} {'dollars':>10} {'test accuracy':>18} {'acc per $':>10}"]
    for pair in results["pairs"].values():
        acc = np.asarray(pair["final_accuracy_per_seed"])
        spent = np.asarray(pair["final_spent_usd_per_seed"])
        sd = acc.std(ddof=1) if acc.size > 1 else 0.0
        rows.append(
            f"{pair['policy']:<8} {pair['annotator']:<11} {pair['labels'][-1]:>6.0f} {spent.mean():>10.4f} "
            f"{acc.mean():>11.3f} ± {sd:.3f} {np.mean(acc / spent):>10.3g}"
        )
    rows.append(f"(mean ± sd over {results['seeds']} seeds; 'acc per $' = final accuracy / dollars spent)")
    rows.append("entropy - random, paired by seed (mean and Student-t 95% interval):")
    for annotator, d in results["paired_entropy_minus_random"].items():
        low, high = d["final_accuracy_diff_interval"]["low"], d["final_accuracy_diff_interval"]["high"]
        if low is None:
            rows.append(f"  {annotator:<11} final accuracy {d['final_accuracy_diff']:+.4f} (one seed: no interval)")
            continue
        verdict = "beyond its interval" if low > 0 or high < 0 else "interval holds 0: not distinguishable from random"
        rows.append(f"  {annotator:<11} final accuracy {d['final_accuracy_diff']:+.4f} [{low:+.4f}, {high:+.4f}]"
                    f"  {verdict}")
    return "\n".join(rows)


def plot_accuracy_vs_dollars(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    styles = {"random": "--", "entropy": "-"}
    for pair in results["pairs"].values():
        colour = DEMO_ANNOTATORS[pair["annotator"]][1]
        dollars = np.asarray(pair["spent_usd"])
        mean = np.asarray(pair["accuracy_mean"])
        ci = np.asarray(pair["accuracy_ci95"])
        ax.plot(dollars, mean, styles[pair["policy"]], color=colour, label=f"{pair['policy']} / {pair['annotator']}")
        ax.fill_between(dollars, mean - ci, mean + ci, color=colour, alpha=0.15, linewidth=0)
    ax.set_xscale("log")
    ax.set_xlabel("dollars spent on labels (log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"BBC News: accuracy vs dollars (mean and 95% CI over {results['seeds']} seeds)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def machine_info() -> dict:
    import os

    import jax

    return {
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpy": np.__version__,
    }
