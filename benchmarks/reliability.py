"""How right the model says it is on people it never saw, and whether it knows when their data are unusual.

    python benchmarks/fold_bundles.py --raw ../shared/data/hapt-dev --cache /tmp/har-fold-bundles   # once
    python benchmarks/reliability.py --raw ../shared/data/hapt-dev --cache /tmp/har-fold-bundles

For each participant fold (the fold bundles of `benchmarks/fold_bundles.py`, default configuration), the fold
model's `Reliability` is learned from its training people exactly as the `model` asset learns it (out of fold:
`decoding.calibration_folds` more models, kept in the cache), then every test person, whose labels the platform
never sees, is scored as an unlabelled participant is:

- calibration: expected calibration error of the decoded probabilities on the test people, before and after;
- the label-free accuracy estimate against their true accuracy (target: within +-0.05 for >= 80 % of people),
  both on the windows a class describes (where the truth exists; the estimate reads no label), and beside it the
  estimate over every window, transitions between activities included, as the product reports it;
- the out-of-distribution flag on the person as recorded, and with the device turned 60 degrees about each axis,
  mirrored across each horizontal axis (the other wrist) and with milli-g read as g (target: fires on every changed
  person, on at most 1 in 15 unchanged people);
- label requests: the person's macro-F1 on the rest of their recording before and after 1, 3 and 5 labelled
  minutes, the minutes chosen by `har labels request` against the same number chosen at random (target: 3 requested
  minutes raise it more than 3 random minutes, averaged over people).

Prints each figure and the targets met or missed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.fold_bundles import FoldBundle, fold_bundles
from har_assets.evaluation.command import open_cohort
from har_assets.ml.calibration import estimate, expected_calibration_error
from har_assets.ml.datasets import WindowSets
from har_assets.ml.decoding import class_indices
from har_assets.ml.experiment import learn_reliability
from har_assets.ml.label_requests import SPAN_S, random_spans, request_spans
from har_assets.ml.metrics import macro_f1
from har_assets.ml.person_adaptation import adapt_to_labels
from har_assets.ml.reliability import Reliability
from har_assets.ml.variants import ExperimentConfig
from har_assets.raw.device_changes import milli_g_read_as_g, mirrored, turned
from har_assets.raw.recording import RawRecording
from har_assets.signal.pipeline import preprocess

MINUTES = (1, 3, 5)
RANDOM_DRAWS = 3


def rise(calibrated: np.ndarray, embedding: np.ndarray, y: np.ndarray, spans: list[tuple[int, int]]) -> float:
    """The person's macro-F1 on their labelled windows outside `spans`, after minus before those spans' labels."""
    given = np.full(len(y), -1)
    inside = np.zeros(len(y), bool)
    for first, last in spans:
        inside[first:last + 1] = True
    given[inside] = y[inside]
    rest = (y >= 0) & ~inside
    adapted = adapt_to_labels(calibrated, embedding, given).argmax(axis=1)
    return macro_f1(y[rest], adapted[rest]) - macro_f1(y[rest], calibrated.argmax(axis=1)[rest])


def label_request_rises(out, calibrated: np.ndarray, y: np.ndarray, segment: np.ndarray,
                        span_windows: int) -> dict[str, dict[int, float]]:
    """Macro-F1 rise on the rest of the recording after M requested / random minutes, for each M."""
    result: dict[str, dict[int, float]] = {"requested": {}, "random": {}}
    for m in MINUTES:
        spans = round(m * 60 / SPAN_S)
        asked = request_spans(calibrated, out.window_proba, out.embedding, segment, span_windows, spans)
        result["requested"][m] = rise(calibrated, out.embedding, y, [(s.first, s.last) for s in asked])
        result["random"][m] = statistics.mean(rise(calibrated, out.embedding, y, random_spans(
            segment, span_windows, spans, seed=d)) for d in range(RANDOM_DRAWS))
    return result


CHANGES = {"turned 60 about x": lambda r: turned(r, "x", 60), "turned 60 about y": lambda r: turned(r, "y", 60),
           "turned 60 about z": lambda r: turned(r, "z", 60), "mirrored y": lambda r: mirrored(r, "y"),
           "mirrored z": lambda r: mirrored(r, "z"), "milli-g read as g": milli_g_read_as_g}


def fold_reliability(fb: FoldBundle, windows: WindowSets, cfg: ExperimentConfig, cache: Path) -> Reliability:
    """The fold model's reliability, learned from its training people as the `model` asset learns it (cached)."""
    folder = cache / f"fold{fb.index}-reliability"
    if not folder.is_dir():
        t0 = time.perf_counter()
        rel = learn_reliability(windows, fb.train, fb.bundle.classes, cfg.model, cfg.train, cfg.decoding,
                                on_fold=lambda i, k, test: print(f"fold {fb.index}: calibration fold {i + 1}/{k}, "
                                                                 f"held out {test}", file=sys.stderr))
        folder.mkdir(parents=True)
        rel.write(folder)
        print(f"fold {fb.index}: reliability learned in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return Reliability.read(folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    cfg = ExperimentConfig()
    cohort = open_cohort(args.raw)
    recordings: dict[str, RawRecording] = cohort.recordings(cfg.preprocess)
    windows = cohort.windows(cfg.preprocess)
    channels = cfg.preprocess.channels
    pooled: dict[str, list[np.ndarray]] = {"proba": [], "calibrated": [], "y": []}
    people: dict[str, dict] = {}
    for fb in fold_bundles(windows, cfg, args.folds, args.cache):
        rel = fold_reliability(fb, windows, cfg, args.cache)
        bundle = fb.bundle
        for pid in fb.test:
            ws = windows[pid]
            out = bundle.decoder.decode(ws.X, ws.segment, channels, bundle.predict_with_embedding)
            calibrated = rel.calibrate(out.proba)
            y = class_indices(ws.labels.astype(str), bundle.classes)
            keep = y >= 0
            pooled["proba"].append(out.proba[keep])
            pooled["calibrated"].append(calibrated[keep])
            pooled["y"].append(y[keep])
            assessment = rel.assess(calibrated, ws.X, channels).describe()
            # truth exists on the windows a class describes; the estimate is compared there (same windows, no
            # labels read); the estimate over every window, transitions between activities included, beside it
            on_truth = estimate(calibrated[keep], rel.estimate_band).describe()
            truth = {"accuracy": float((out.labels[keep] == y[keep]).mean()),
                     "macro_f1": macro_f1(y[keep], out.labels[keep]),
                     "estimated_accuracy_all_windows": assessment["estimated_accuracy"],
                     "unlabelled_window_share": float(1 - keep.mean())}
            step_s = cfg.preprocess.window_step / cfg.preprocess.target_hz
            rises = label_request_rises(out, calibrated, y, ws.segment, round(SPAN_S / step_s))
            flags = {"as recorded": assessment["ood_flag"]}
            for name, change in CHANGES.items():
                changed, _ = preprocess(change(recordings[pid]), cfg.preprocess)
                flags[name] = rel.ood.score(changed.X, channels).flagged
            people[pid] = {"fold": fb.index, **truth, **{k: on_truth[k] for k in (
                "estimated_accuracy", "estimated_accuracy_low", "estimated_accuracy_high", "estimated_macro_f1")},
                **{k: assessment[k] for k in ("person_distance", "unlike_training_share")},
                "temperature": rel.temperature, "ood_flags": flags,
                "label_request_rise": rises}
            p = people[pid]
            print(f"{pid} (fold {fb.index}): accuracy {p['accuracy']:.3f} estimated {p['estimated_accuracy']:.3f} "
                  f"[{p['estimated_accuracy_low']:.3f}, {p['estimated_accuracy_high']:.3f}] (every window "
                  f"{p['estimated_accuracy_all_windows']:.3f}, {p['unlabelled_window_share']:.0%} unlabelled), "
                  f"macro-F1 {p['macro_f1']:.3f} estimated {p['estimated_macro_f1']}; "
                  f"OOD distance {p['person_distance']}, "
                  f"flags {sorted(k for k, v in flags.items() if v)}; macro-F1 rise after 1/3/5 minutes "
                  f"requested {[round(v, 3) for v in rises['requested'].values()]}, random "
                  f"{[round(v, 3) for v in rises['random'].values()]}", flush=True)
    proba, calibrated, y = (np.concatenate(pooled[k]) for k in ("proba", "calibrated", "y"))
    ece = {"uncalibrated": expected_calibration_error(proba, y), "calibrated": expected_calibration_error(calibrated,
                                                                                                         y)}
    errors = {p: s["estimated_accuracy"] - s["accuracy"] for p, s in people.items()}
    within = sum(abs(e) <= 0.05 for e in errors.values())
    inside = sum(s["estimated_accuracy_low"] <= s["accuracy"] <= s["estimated_accuracy_high"] for s in people.values())
    f1_errors = [s["estimated_macro_f1"] - s["macro_f1"] for s in people.values() if s["estimated_macro_f1"]]
    n = len(people)
    print(f"\n{n} people, each scored by the fold model that never saw them")
    print(f"ECE on unseen people: {ece['uncalibrated']:.4f} uncalibrated, {ece['calibrated']:.4f} calibrated "
          f"(temperatures {sorted({round(s['temperature'], 3) for s in people.values()})})")
    print(f"accuracy estimate: mean |error| {statistics.mean(abs(e) for e in errors.values()):.4f}, within 0.05 for "
          f"{within}/{n}, truth inside the band for {inside}/{n}; macro-F1 estimate mean |error| "
          f"{statistics.mean(abs(e) for e in f1_errors):.4f} ({len(f1_errors)} people)")
    fired = {name: sum(s["ood_flags"][name] for s in people.values()) for name in ["as recorded", *CHANGES]}
    for name, k in fired.items():
        print(f"OOD flag fired on {k}/{n} people {name}")
    mean_rise = {kind: {m: statistics.mean(s["label_request_rise"][kind][m] for s in people.values())
                        for m in MINUTES} for kind in ("requested", "random")}
    for m in MINUTES:
        print(f"macro-F1 on the rest of the recording after {m} labelled minute(s): {mean_rise['requested'][m]:+.4f} "
              f"requested, {mean_rise['random'][m]:+.4f} random (mean over people)")
    verdicts = [(f"3 requested minutes raise macro-F1 by {mean_rise['requested'][3]:+.4f} > 3 random minutes "
                 f"{mean_rise['random'][3]:+.4f}", mean_rise["requested"][3] > mean_rise["random"][3]),
                (f"accuracy estimate within 0.05 for {within}/{n} people (>= 80 %)", within >= 0.8 * n),
                (f"ECE on unseen people {ece['calibrated']:.4f} <= 0.05", ece["calibrated"] <= 0.05),
                (f"OOD flag on {fired['as recorded']}/{n} unchanged people (<= 1 in 15)",
                 fired["as recorded"] <= n / 15)]
    verdicts += [(f"OOD flag on every person {name} ({k}/{n})", k == n) for name, k in fired.items()
                 if name != "as recorded"]
    print("\ntargets:")
    for text, ok in verdicts:
        print(f"  {'met   ' if ok else 'MISSED'}  {text}")
    if args.json:
        args.json.write_text(json.dumps({"people": people, "ece": ece, "ood_fired": fired,
                                               "label_request_rise": mean_rise}, indent=2))
    return 0 if all(ok for _, ok in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
