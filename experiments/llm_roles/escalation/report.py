"""Confidence escalation with real local models: a 0.5B annotator escalates to a 1.5B one.

Reads only the recorded responses of ``experiments/local_models/run.py``
(``<model>.jsonl.gz``: one full chat-completion body per item, with token
usage and the top-10 logprobs of every emitted token), so the table rebuilds
offline in seconds::

    python experiments/llm_roles/escalation/report.py               # 20 seeds
    python experiments/llm_roles/escalation/report.py --seeds 5 --calibration-share 0.5

The chain (Trust or Escalate, Jung, Brahman and Choi, ICLR 2025): the cheap
annotator ``--cheap`` (Qwen2.5-Coder-0.5B-Instruct) labels every item; it keeps
its label when its confidence clears a threshold certified by fixed-sequence
testing (:func:`alband.routing.escalation.calibrate_cascade`), otherwise the
item is escalated to ``--strong`` (Qwen2.5-Coder-1.5B-Instruct) whose label is
taken. With probability at least
``1 - delta`` over the audited sample, the kept labels agree with the strong
annotator at rate at least ``1 - alpha``. Two confidences of the cheap
annotator, each a fixed function of its one response:

* **label-set p**: the probability of its written label among the label set,
  from the top-10 alternatives at the label's first token
  (:func:`alband.annotators.label_set_scoring.label_set_scores`); 0 when the
  answer is invalid or the scores cannot be computed;
* **stated confidence**: the ``"confidence"`` number of its JSON answer
  (:func:`alband.annotators.parsing.parse_label_answer`); 0 when absent or invalid.

Two threshold grids, strict to lenient, both fixed before the audited sample
is seen: the library's default ``0.99, 0.98, ..., 0``, and 100 quantiles of the
cheap confidences of the unaudited (test) items, from the one with about
``2 k`` audited items above it down to 0 (:func:`stream_grid`). Fixed-sequence testing stops at the first hypothesis it
cannot reject, and a threshold no audited item reaches cannot be rejected
(``p = 1``), so with the default grid a confidence that never reaches 0.99
certifies nothing; the quantile grid starts where the confidences are.

A third rule certifies one threshold per dataset on that dataset's audited
items (each at ``delta / 3``, a union bound; :func:`per_dataset_thresholds`):
the cheap model's confidence is on different scales on different tasks.

Items are those both models answered (joined on dataset and id), AG News, TREC
and Subj pooled. Per seed, a uniform ``--calibration-share`` of them is the
audited sample (both models are paid on it) and the rest are the test items;
the thresholds are certified on the audited sample and applied to the test
items. Pooling is deliberate: per dataset, 75 audited items cannot certify a
threshold unless a confident slice of at least 22 items has (almost) no
disagreement (``(1 - 0.1)^n <= 0.1`` needs ``n >= 22`` at alpha = delta = 0.1),
and a pooled stream of mixed tasks is what an annotation service sees; the
guarantee is then about the pooled stream, not about each dataset.

Reported per (alpha, delta), on the test items, as means over seeds with
Student-t intervals (:func:`alband.stats.mean_interval`): coverage (share the
cheap annotator keeps), agreement of the kept labels with the strong
annotator, agreement of all labels with it (escalated ones agree by
construction), accuracy against gold, dollars per item at nominal prices
applied to the recorded token counts (a kept item pays the cheap call, an
escalated one both calls; the audit is a one-off cost stated separately), the
share of seeds whose kept labels disagree with the strong annotator at most
alpha (Wilson interval, :func:`alband.stats.wilson_interval`), and paired
differences against always-strong over the seeds
(:func:`alband.stats.paired_interval`). Gold accuracy is shown because the
strong model is itself often wrong: agreement with it is not correctness.
Outputs ``results/summary.md`` and ``results/escalation.json`` beside this file.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
import time
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parents[2]
sys.path.insert(0, str(PROJECT / "src"))

from alband.annotators.label_set_scoring import label_set_scores  # noqa: E402
from alband.annotators.parsing import parse_label_answer  # noqa: E402
from alband.routing.escalation import calibrate_cascade, default_grid, keeping_stage  # noqa: E402
from alband.stats import mean_interval, paired_interval, wilson_interval  # noqa: E402

RECORDS = PROJECT / "experiments" / "local_models" / "results"
CHEAP, STRONG = "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"
LEVELS = ((0.1, 0.1), (0.2, 0.1), (0.3, 0.1))
CONFIDENCES = ("label-set p", "stated confidence")
#: (confidence column, threshold grid) of each escalation rule reported.
ROUTES = ((0, "grid 0.99..0"), (0, "stream-quantile grid"), (0, "per-dataset thresholds"),
          (1, "stream-quantile grid"))
#: Nominal dollars per million (input, output) tokens: a small and a frontier-class API model's list prices.
PRICES = {"cheap": (0.15, 0.60), "strong": (3.0, 15.0)}


class BadRecords(Exception):
    """A record that cannot be read: the message names the file, the line and the field."""


def read_answers(path: Path) -> dict[tuple[str, str], dict]:
    """Per ``(dataset, id)``: gold, written label, both confidences and token counts of one model's records.

    A tail cut off by a recording still in progress (no gzip trailer, half a line) is dropped.
    """
    answers = {}
    try:
        with gzip.open(path, "rt") as handle:
            lines = list(_lines(handle))
    except OSError as err:
        raise BadRecords(f"{path}: cannot read ({err})") from None
    for number, line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # a half-written last line
                break
            raise BadRecords(f"{path}: line {number}: not JSON") from None
        where = f"{path}: line {number}"
        try:
            names = record["labels"]
            choice = record["response"]["choices"][0]
            text = choice["message"]["content"]
            usage = record["response"]["usage"]
            tokens = (int(usage["prompt_tokens"]), int(usage["completion_tokens"]))
            key = (str(record["dataset"]), str(record["id"]))
            gold = int(record["gold"])
        except (KeyError, IndexError, TypeError, ValueError) as err:
            raise BadRecords(f"{where}: missing or malformed field {err}") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not 0 <= gold < len(names):
            raise BadRecords(f"{where}: field labels must be a list of names and gold an index into it")
        parsed = parse_label_answer(text, names)
        scores = label_set_scores((choice.get("logprobs") or {}).get("content"), text, names)
        written = parsed.label
        scored = scores.label if scores is not None else written
        answers[key] = dict(
            gold=gold, label=-1 if written is None else written, scored=-1 if scored is None else scored,
            p=scores.probabilities[written] if scores is not None and written is not None else 0.0,
            stated=parsed.confidence if written is not None and math.isfinite(parsed.confidence) else 0.0,
            tokens=tokens)
    return answers


def _lines(handle):
    number = 0
    try:
        for line in handle:
            number += 1
            yield number, line
    except (EOFError, zlib.error, gzip.BadGzipFile):
        return


def load(folder: Path, cheap: str, strong: str) -> dict:
    """Arrays over the items both models answered, in a fixed (dataset, id) order."""
    models = {}
    for role, name in (("cheap", cheap), ("strong", strong)):
        path = folder / f"{name}.jsonl.gz"
        if not path.exists():
            raise BadRecords(f"{path}: not found (record it with experiments/local_models/run.py)")
        models[role] = read_answers(path)
    keys = sorted(set(models["cheap"]) & set(models["strong"]))
    if len(keys) < 4:
        raise BadRecords(f"{folder}: only {len(keys)} items answered by both {cheap} and {strong}")
    for key in keys:
        if models["cheap"][key]["gold"] != models["strong"][key]["gold"]:
            raise BadRecords(f"{folder}: item {key[0]}/{key[1]} has different gold labels in the two files")
    c, s = models["cheap"], models["strong"]

    def usd(answer, role):
        price_in, price_out = PRICES[role]
        return (answer["tokens"][0] * price_in + answer["tokens"][1] * price_out) / 1e6

    return dict(
        keys=keys,
        dataset=np.array([k[0] for k in keys]),
        gold=np.array([c[k]["gold"] for k in keys]),
        cheap=np.array([c[k]["label"] for k in keys]),
        cheap_scored=np.array([c[k]["scored"] for k in keys]),
        strong=np.array([s[k]["label"] for k in keys]),
        confidence=np.stack([[c[k]["p"] for k in keys], [c[k]["stated"] for k in keys]], 1),
        cheap_usd=np.array([usd(c[k], "cheap") for k in keys]),
        strong_usd=np.array([usd(s[k], "strong") for k in keys]),
    )


def run(items: dict, seeds: int, calibration_share: float) -> dict:
    n = len(items["keys"])
    n_cal = int(round(calibration_share * n))
    if not 1 <= n_cal < n:
        raise BadRecords(f"--calibration-share {calibration_share} leaves no audited or no test item of {n}")
    agree = (items["cheap"] == items["strong"]) & (items["cheap"] >= 0)
    cheap_right = items["cheap"] == items["gold"]
    strong_right = items["strong"] == items["gold"]
    rows: dict[str, list[dict]] = {}
    for seed in range(seeds):
        order = np.random.default_rng(seed).permutation(n)
        cal, test = order[:n_cal], order[n_cal:]
        rows.setdefault("always strong (1.5B)", []).append(dict(
            coverage=0.0, kept_agreement=np.nan, agreement=1.0, accuracy=strong_right[test].mean(),
            usd=items["strong_usd"][test].mean()))
        rows.setdefault("always cheap (0.5B)", []).append(dict(
            coverage=1.0, kept_agreement=agree[test].mean(), agreement=agree[test].mean(),
            accuracy=cheap_right[test].mean(), usd=items["cheap_usd"][test].mean()))
        for column, grid_name in ROUTES:
            conf = items["confidence"][:, column:column + 1]
            for alpha, delta in LEVELS:
                if grid_name == "per-dataset thresholds":
                    thresholds = per_dataset_thresholds(conf[:, 0], agree, items["dataset"], cal, test, alpha, delta)
                    kept = conf[test, 0] >= thresholds
                else:
                    grid = (default_grid(100) if grid_name == "grid 0.99..0"
                            else stream_grid(conf[test, 0], n_cal, alpha, delta))
                    thresholds = calibrate_cascade(conf[cal], agree[cal, None], alpha, delta, grid)
                    kept = keeping_stage(conf[test], thresholds) == 0
                kept_agree = agree[test][kept]
                right = np.where(kept, cheap_right[test], strong_right[test])
                usd = items["cheap_usd"][test] + np.where(kept, 0.0, items["strong_usd"][test])
                name = f"0.5B ({CONFIDENCES[column]}, {grid_name}) -> 1.5B, alpha {alpha}, delta {delta}"
                rows.setdefault(name, []).append(dict(
                    coverage=kept.mean(), kept_agreement=kept_agree.mean() if kept.any() else np.nan,
                    agreement=np.where(kept, agree[test], True).mean(), accuracy=right.mean(), usd=usd.mean(),
                    held=bool(not kept.any() or 1.0 - kept_agree.mean() <= alpha),
                    threshold=[float(t) for t in np.unique(thresholds)]))
    audit_usd = float((items["cheap_usd"] + items["strong_usd"]).mean() * n_cal)
    per_dataset = {}
    for name in [*sorted(set(items["dataset"])), "pooled"]:
        mask = items["dataset"] == name if name != "pooled" else np.ones(n, bool)
        per_dataset[name] = dict(items=int(mask.sum()), cheap_accuracy=float(cheap_right[mask].mean()),
                                 strong_accuracy=float(strong_right[mask].mean()),
                                 agreement=float(agree[mask].mean()),
                                 auroc=[auroc(items["confidence"][mask, c], agree[mask]) for c in (0, 1)])
    return dict(seeds=seeds, items=n, calibration=n_cal, test=n - n_cal, prices_usd_per_million=PRICES,
                audit_usd=audit_usd, written_vs_scored_differ=int((items["cheap"] != items["cheap_scored"]).sum()),
                per_dataset=per_dataset, rows=rows)


def per_dataset_thresholds(confidence: np.ndarray, agree: np.ndarray, dataset: np.ndarray, cal: np.ndarray,
                           test: np.ndarray, alpha: float, delta: float) -> np.ndarray:
    """Per test item, the threshold certified on the audited items of its own dataset.

    Each of the ``D`` datasets is certified at level ``delta / D`` with its own stream-quantile grid, so
    that with probability at least ``1 - delta`` every dataset's kept labels (and so their union) agree
    with the strong annotator at rate at least ``1 - alpha`` (a union bound).
    """
    names = sorted(set(dataset[test]))
    out = np.full(test.size, np.inf)
    for name in names:
        c, t = cal[dataset[cal] == name], test[dataset[test] == name]
        if c.size == 0:
            continue
        grid = stream_grid(confidence[t], c.size, alpha, delta / len(names))
        threshold = calibrate_cascade(confidence[c, None], agree[c, None], alpha, delta / len(names), grid)[0]
        out[dataset[test] == name] = threshold
    return out


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    """``P(score of a positive > score of a negative)``, ties counted half (Mann-Whitney); NaN without both."""
    pos, neg = score[positive], score[~positive]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def stream_grid(stream_confidence: np.ndarray, n_audited: int, alpha: float, delta: float,
                size: int = 100) -> np.ndarray:
    """Thresholds at ``size`` quantiles of the unaudited items' confidences, strict to lenient, repeated
    values once, from the quantile with about ``2 k`` audited items above it down to 0.

    ``k = ceil(log delta / log(1 - alpha))`` is the fewest kept items that can be certified at all (all of
    them agreeing: ``(1 - alpha)^k <= delta``); a first threshold with fewer audited items above it fails
    and fixed-sequence testing stops there. The grid depends on the cheap annotator's confidences on the
    test items only (no strong label, no audited item) and on ``alpha``, ``delta`` and the audit size, so
    it is fixed before the calibration sample is looked at, as fixed-sequence testing requires.
    """
    k = math.ceil(math.log(delta) / math.log(1.0 - alpha))
    top = max(0.0, 1.0 - 2.0 * k / n_audited)
    return np.unique(np.quantile(stream_confidence, np.linspace(top, 0.0, size)))[::-1]


def _interval(values, fmt="{:.3f}") -> str:
    v = mean_interval(values)
    if not np.isfinite(v.estimate):
        return "-"
    if not np.isfinite(v.low):
        return f"{fmt.format(v.estimate)} (one seed)"
    return f"{fmt.format(v.estimate)} [{fmt.format(v.low)}, {fmt.format(v.high)}]"


def _paired(values, base, fmt="{:+.3f}") -> str:
    d = paired_interval(values, base)
    if not np.isfinite(d.low):
        return "-" if not np.isfinite(d.estimate) else fmt.format(d.estimate)
    return f"{fmt.format(d.estimate)} [{fmt.format(d.low)}, {fmt.format(d.high)}]"


def table(result: dict) -> str:
    rows = result["rows"]
    strong = rows["always strong (1.5B)"]
    lines = ["| annotation | coverage | agreement of kept labels with 1.5B | agreement of all labels with 1.5B | "
             "accuracy (gold) | $ per 1k items | seeds with kept disagreement <= alpha | "
             "accuracy - always strong | $ per 1k items - always strong |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, seeds in rows.items():
        held = "-"
        if "held" in seeds[0]:
            w = wilson_interval(sum(s["held"] for s in seeds), len(seeds))
            held = f"{w.estimate:.2f} [{w.low:.2f}, {w.high:.2f}]"
        base = name.startswith("always strong")
        accuracy = "-" if base else _paired([s["accuracy"] for s in seeds], [s["accuracy"] for s in strong])
        usd = "-" if base else _paired([1e3 * s["usd"] for s in seeds], [1e3 * s["usd"] for s in strong],
                                       "{:+.3f}")
        lines.append(f"| {name} | {_interval([s['coverage'] for s in seeds])} | "
                     f"{_interval([s['kept_agreement'] for s in seeds])} | "
                     f"{_interval([s['agreement'] for s in seeds])} | {_interval([s['accuracy'] for s in seeds])} | "
                     f"{_interval([1e3 * s['usd'] for s in seeds], '{:.3f}')} | {held} | {accuracy} | {usd} |")
    return "\n".join(lines)


def datasets_table(result: dict) -> str:
    lines = ["| dataset | items (both models) | 0.5B accuracy | 1.5B accuracy | 0.5B agrees with 1.5B | "
             "AUROC of label-set p for agreement | AUROC of stated confidence for agreement |",
             "|---|---|---|---|---|---|---|"]
    for name, d in result["per_dataset"].items():
        lines.append(f"| {name} | {d['items']} | {d['cheap_accuracy']:.3f} | {d['strong_accuracy']:.3f} | "
                     f"{d['agreement']:.3f} | {d['auroc'][0]:.2f} | {d['auroc'][1]:.2f} |")
    return "\n".join(lines)


def summary(result: dict, cheap: str, strong: str) -> str:
    (ci, co), (si, so) = PRICES["cheap"], PRICES["strong"]
    return (f"Cheap {cheap}, strong {strong}; {result['items']} items answered by both (AG News, TREC, Subj "
            f"pooled), {result['seeds']} seeds, each a random split into {result['calibration']} audited "
            f"calibration items and {result['test']} test items; 95% intervals over seeds. Nominal prices per "
            f"million input/output tokens: cheap ${ci}/${co}, strong ${si}/${so}, applied to the recorded token "
            f"counts; the audit (both models on the calibration items) costs ${result['audit_usd']:.4f} once. "
            f"The cheap model's written and label-set-scored labels differ on "
            f"{result['written_vs_scored_differ']} of {result['items']} items.\n\n"
            + datasets_table(result) + "\n\n" + table(result) + "\n")


def _jsonable(value):
    """Plain JSON: numpy scalars as Python numbers, NaN as null."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=Path, default=RECORDS,
                        help="folder of the <model>.jsonl.gz response files (default: experiments/local_models/results)")
    parser.add_argument("--cheap", default=CHEAP)
    parser.add_argument("--strong", default=STRONG)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--calibration-share", type=float, default=0.5,
                        help="share of the items audited per seed (default 0.5)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    if args.seeds < 2 or not 0.0 < args.calibration_share < 1.0:
        print("report.py: error: --seeds must be >= 2 and --calibration-share in (0, 1)", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        result = run(load(args.records, args.cheap, args.strong), args.seeds, args.calibration_share)
    except BadRecords as err:
        print(f"report.py: error: {err}", file=sys.stderr)
        return 2
    result.update(cheap=args.cheap, strong=args.strong)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "escalation.json").write_text(json.dumps(_jsonable(result), indent=1))
    text = summary(result, args.cheap, args.strong)
    (args.out / "summary.md").write_text(text)
    print(text)
    print(f"({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
