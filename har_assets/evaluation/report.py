"""The text report of `har evaluate`: variants side by side, then per class, per participant, paired."""

from __future__ import annotations

import math


def _f(value: float, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    fmt = lambda row: "  ".join(  # noqa: E731
        str(x).ljust(w) if i == 0 else str(x).rjust(w) for i, (x, w) in enumerate(zip(row, widths, strict=True)))
    return [fmt(header), *(fmt(r) for r in rows)]


def confusion_lines(classes: list[str], cm: list[list[int]]) -> list[str]:
    short = [c[:10] for c in classes]
    return _table(["true \\ predicted", *short], [[c, *map(str, row)] for c, row in zip(classes, cm, strict=True)])


def report_text(info: dict, summary: dict) -> str:
    """The whole report; `info` describes the cohort and the run, `summary` is cv_summary.summarize's."""
    variants, paired, base = summary["variants"], summary["paired"], summary["baseline"]
    names = list(variants)
    lines = [f"har evaluate: {info['participants']} participants in {info['raw']}, {info['folds']}-fold "
             f"leave-participants-out, training seeds {info['seeds']}, {len(names)} variant(s)", ""]
    rows = []
    for name, v in variants.items():
        runs = f"{v['fold_runs'] - v['failed_runs']}/{v['fold_runs']}"
        rows.append([name, f"{_f(v['macro_f1_mean'])} ± {_f(v['macro_f1_sd'])}", _f(v["macro_f1_min"]),
                     _f(v["macro_f1_max"]), _f(v["accuracy_mean"]), runs, _f(v["epochs_mean"], 1),
                     _f(v["seconds_per_epoch"], 2), f"{v['seconds']:.0f}"])
    lines += _table(["variant", "macro-F1 mean ± sd", "min", "max", "accuracy", "folds ok", "epochs", "s/epoch",
                     "time s"], rows)
    decoded = {n: v for n, v in variants.items() if v.get("steps_macro_f1")}
    if decoded:
        lines += ["", "macro-F1 after each step of decoding a recording (mean over fold runs; better than the window "
                      "classifier alone in n of the fold runs)"]
        rows = []
        for name, v in decoded.items():
            steps, better = v["steps_macro_f1"], v["steps_better_than_window"]
            rows.append([name, _f(steps.get("window")), *(
                f"{_f(steps.get(k))} ({better.get(k, 0)}/{v['fold_runs'] - v['failed_runs']})"
                for k in ("aligned", "decoded", "causal"))])
        lines += _table(["variant", "each window alone", "+ person's frame", "+ smoothing (offline)",
                         "+ smoothing (causal)"], rows)
        lines += ["", "timeline (test recordings): minutes labelled correctly, activity switches per hour"]
        rows = []
        for name, v in decoded.items():
            t, sec = v["timeline"], v["seconds_per_1000_windows"]
            rows.append([name, _f(t.get("minutes_correct_share_window")), _f(t.get("minutes_correct_share")),
                         _f(t.get("switches_per_hour_true"), 0), _f(t.get("switches_per_hour_window"), 0),
                         _f(t.get("switches_per_hour_predicted"), 0),
                         " / ".join(_f(sec.get(k), 3) for k in ("align", "classify", "smooth"))])
        lines += _table(["variant", "minutes right (windows)", "minutes right (decoded)", "switches/h true",
                         "window by window", "decoded", "s per 1000 windows: align / classify / smooth"], rows)
    calibrated = {n: v["calibration"] for n, v in variants.items() if v.get("calibration")}
    if calibrated:
        lines += ["", "calibration on the test people (mean over fold runs; temperature fitted out of fold on the "
                      "training people) and the label-free accuracy estimate (every window counted)"]
        lines += _table(["variant", "ECE uncalibrated", "ECE calibrated", "temperature", "estimate within ±0.05",
                         "mean |error|", "flagged"], [
            [n, _f(c["ece_uncalibrated"], 4), _f(c["ece_calibrated"], 4), _f(c["temperature"], 2),
             f"{c['estimates_within_0_05']}/{c['estimates']}", _f(c["estimate_mean_abs_error"], 3),
             ", ".join(c["flagged"]) or "-"] for n, c in calibrated.items()])
    classes = sorted({c for v in variants.values() for c in v["per_class_f1"]})
    if classes:
        lines += ["", "per-class F1 (mean over folds)"]
        lines += _table(["class", *names], [[c, *(_f(variants[n]["per_class_f1"].get(c, float("nan")))
                                                  for n in names)] for c in classes])
    people = sorted({p for v in variants.values() for p in v["per_participant"]})
    if people:
        lines += ["", "per-participant macro-F1 (tested once per seed; in brackets: each window alone)"]

        def person(n: str, p: str) -> str:
            s = variants[n]["per_participant"].get(p, {})
            alone = s.get("window_macro_f1")
            return _f(s.get("macro_f1", float("nan"))) + (f" ({_f(alone)})" if n in decoded and alone is not None
                                                           and alone != s.get("macro_f1") else "")

        lines += _table(["participant", *names], [[p, *(person(n, p) for n in names)] for p in people])
    for name, v in variants.items():
        if v["classes"]:
            lines += ["", f"confusion matrix, {name} (windows, test folds pooled)", *confusion_lines(
                v["classes"], v["confusion_matrix"])]
            if name in decoded and v["window_confusion_matrix"] != v["confusion_matrix"]:
                lines += ["", f"confusion matrix, {name}, each window alone in the device frame as it is",
                          *confusion_lines(v["classes"], v["window_confusion_matrix"])]
    if paired:
        lines += ["", f"paired differences against {base} (macro-F1, same folds and seeds)"]
        for name, d in paired.items():
            p = d["wilcoxon_p_participants"]
            lines.append(
                f"  {name} - {base}: {d['macro_f1_diff_mean']:+.3f} ± {_f(d['macro_f1_diff_sd'])} per fold run, "
                f"better in {d['better_fold_runs']} of {d['fold_runs']}; per participant better for "
                f"{d['better_participants']}, worse for {d['worse_participants']} of {d['participants']}"
                + (f" (Wilcoxon p = {p:.3f})" if not math.isnan(p) else ""))
    failures = [(name, f) for name, v in variants.items() for f in v["folds"] if "error" in f]
    if failures:
        lines += ["", f"FAILED fold runs: {len(failures)}"]
        lines += [f"  {name}, fold {f['fold']} seed {f['seed']} (test {','.join(f['test'])}): {f['error']}"
                  for name, f in failures]
    return "\n".join(lines)
