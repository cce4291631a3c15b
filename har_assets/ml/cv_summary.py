"""Summaries of cross-validation results: per variant, and paired against the first variant.

Macro-F1 is the one definition of `har_assets.ml.metrics`. Per variant: mean ± sd over the
fold runs (folds × training seeds), per-class F1 averaged over the folds whose test people
performed the class, the confusion matrix summed over folds, each participant's scores (every
participant is tested once per seed). Paired: the same fold and seed, or the same participant,
under two variants.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import numpy as np
from scipy.stats import wilcoxon

from har_assets.ml.crossval import FoldResult


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return float(statistics.fmean(values)), float(statistics.stdev(values)) if len(values) > 1 else 0.0


def pooled_confusion(results: Sequence[FoldResult], key: str = "confusion_matrix") -> tuple[list[str], list[list[int]]]:
    """Classes (union over folds) and the confusion matrix `key` summed over the folds' test predictions."""
    classes = sorted({c for r in results if r.ok for c in r.report["classes"]})
    index = {c: i for i, c in enumerate(classes)}
    total = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for r in results:
        if not r.ok or key not in r.report:
            continue
        rows = [index[c] for c in r.report["classes"]]
        total[np.ix_(rows, rows)] += np.asarray(r.report[key], dtype=np.int64)
    return classes, total.tolist()


def summarize_variant(results: Sequence[FoldResult]) -> dict:
    """Scores of one variant over its fold runs (failed folds are listed, not scored)."""
    ok = [r for r in results if r.ok]
    f1 = [r.report["macro_f1"] for r in ok]
    mean, sd = _mean_sd(f1)
    per_class: dict[str, list[float]] = {}
    for r in ok:
        for c, s in r.report["per_class"].items():
            if s["support"] > 0:
                per_class.setdefault(c, []).append(s["f1"])
    people: dict[str, dict[str, list[float]]] = {}
    for r in ok:
        for p, s in r.report["per_participant"].items():
            entry = people.setdefault(p, {"macro_f1": [], "accuracy": []})
            entry["macro_f1"].append(s["macro_f1"])
            entry["accuracy"].append(s["accuracy"])
    classes, cm = pooled_confusion(results)
    _, window_cm = pooled_confusion(results, key="window_confusion_matrix")
    steps: dict[str, list[float]] = {}
    timeline: dict[str, list[float]] = {}
    step_seconds: dict[str, list[float]] = {}
    for r in ok:
        for name, value in r.report.get("steps", {}).items():
            steps.setdefault(name, []).append(value)
        for name, value in r.report.get("timeline", {}).items():
            timeline.setdefault(name, []).append(value)
        for name, value in r.report.get("seconds_per_1000_windows", {}).items():
            step_seconds.setdefault(name, []).append(value)
    for r in ok:
        for p, s in r.report["per_participant"].items():
            if s.get("window_macro_f1") is not None:
                people[p].setdefault("window_macro_f1", []).append(s["window_macro_f1"])
    calibrated = [r.report["calibration"] for r in ok if (r.report.get("calibration") or {}).get("calibrated")]
    errors = [e for c in calibrated for e in c["estimate_errors"].values()]
    epochs = [len(r.epochs) for r in ok]
    epoch_s = [e.seconds for r in ok for e in r.epochs]
    return {
        "fold_runs": len(results), "failed_runs": len(results) - len(ok),
        "macro_f1_mean": mean, "macro_f1_sd": sd,
        "macro_f1_min": min(f1) if f1 else float("nan"), "macro_f1_max": max(f1) if f1 else float("nan"),
        "accuracy_mean": _mean_sd([r.report["accuracy"] for r in ok])[0],
        "per_class_f1": {c: float(statistics.fmean(v)) for c, v in sorted(per_class.items())},
        "per_participant": {p: {k: float(statistics.fmean(v)) for k, v in scores.items()}
                            for p, scores in sorted(people.items())},
        "classes": classes, "confusion_matrix": cm, "window_confusion_matrix": window_cm,
        "steps_macro_f1": {k: float(statistics.fmean(v)) for k, v in steps.items()},
        "steps_better_than_window": {k: int(sum(a > b for a, b in zip(v, steps["window"], strict=True)))
                                     for k, v in steps.items() if k != "window"} if "window" in steps else {},
        "timeline": {k: float(np.nanmean(v)) for k, v in timeline.items()},
        "seconds_per_1000_windows": {k: float(statistics.fmean(v)) for k, v in step_seconds.items()},
        "calibration": {
            "fold_runs": len(calibrated),
            **{k: float(statistics.fmean(c[k] for c in calibrated)) for k in (
                "ece_uncalibrated", "ece_calibrated", "temperature")},
            "estimates": len(errors), "estimates_within_0_05": sum(abs(e) <= 0.05 for e in errors),
            "estimate_mean_abs_error": float(statistics.fmean(abs(e) for e in errors)),
            "flagged": sorted({p for c in calibrated for p in c["flagged"]})} if calibrated and errors else {},
        "epochs_mean": float(statistics.fmean(epochs)) if epochs else float("nan"),
        "seconds_per_epoch": float(statistics.fmean(epoch_s)) if epoch_s else float("nan"),
        "seconds": float(sum(r.seconds for r in results)),
        "folds": [{"fold": r.fold, "seed": r.seed, "test": r.test, "seconds": round(r.seconds, 2),
                   "epochs": len(r.epochs), "best_epoch": r.best_epoch,
                   **({"macro_f1": r.report["macro_f1"], "accuracy": r.report["accuracy"]} if r.ok
                      else {"error": r.error})} for r in results],
    }


def paired_difference(base: Sequence[FoldResult], other: Sequence[FoldResult]) -> dict:
    """`other` minus `base` in macro-F1: per fold run (same fold and seed) and per participant (same person,
    mean over seeds), with how often `other` is better and a Wilcoxon signed-rank p over participants."""
    by_key = {(r.fold, r.seed): r for r in base if r.ok}
    folds = [r.report["macro_f1"] - by_key[(r.fold, r.seed)].report["macro_f1"]
             for r in other if r.ok and (r.fold, r.seed) in by_key]
    base_people = summarize_variant(base)["per_participant"]
    other_people = summarize_variant(other)["per_participant"]
    people = {p: other_people[p]["macro_f1"] - base_people[p]["macro_f1"] for p in sorted(other_people)
              if p in base_people}
    diffs = np.array(list(people.values()))
    p_value = float("nan")
    if np.count_nonzero(diffs) >= 6:  # below that the test cannot reach p < 0.05
        p_value = float(wilcoxon(diffs).pvalue)
    mean, sd = _mean_sd(folds)
    return {"macro_f1_diff_mean": mean, "macro_f1_diff_sd": sd, "fold_runs": len(folds),
            "better_fold_runs": int(sum(d > 0 for d in folds)), "participants": len(people),
            "better_participants": int((diffs > 0).sum()), "worse_participants": int((diffs < 0).sum()),
            "wilcoxon_p_participants": p_value, "per_participant": people}


def summarize(results_by_variant: dict[str, list[FoldResult]]) -> dict:
    """Every variant's summary, and each later variant paired against the first."""
    names = list(results_by_variant)
    variants = {name: summarize_variant(rows) for name, rows in results_by_variant.items()}
    paired = {name: paired_difference(results_by_variant[names[0]], results_by_variant[name]) for name in names[1:]}
    return {"baseline": names[0] if names else None, "variants": variants, "paired": paired}
