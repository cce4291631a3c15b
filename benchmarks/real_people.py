"""The default configuration against the plain reference, on real people never seen in training.

    python benchmarks/real_people.py --raw ../shared/data/hapt-dev              # 5 folds, seeds 0 and 1
    python benchmarks/real_people.py --raw ../shared/data/hapt-dev --gravity separate remove   # modes too
    python benchmarks/real_people.py --raw study/raw --folds 5 --seeds 0 --posture sitting standing
    python benchmarks/real_people.py --raw ../shared/data/hapt-dev --variant e100:train.epochs=100

A thin caller of `har evaluate` (`har_assets.evaluation`): the default configuration and the
reference (a plain 1D-CNN-BiLSTM, gravity kept, Adam 1e-3, batch 64, a fixed 30 epochs on the
training and validation people; `har_assets.ml.variants.REFERENCE`) trained and tested on the same
participant folds, side by side in one run (with `--gravity`, the default with other gravity modes
too), logged to MLflow under a temporary home unless `--home` is given. Prints the report and
whether the targets hold: mean macro-F1 at least `--target`, the F1 of each `--posture` class at
least `--posture-target`, and the default at least `--margin` above the reference and better in at least
`--better-runs` of the fold runs. The report shows each step of decoding a recording (each window alone, the
person's frame aligned, smoothed offline and causally) on the same trained models, per class, per person and
as confusion matrices, with the seconds each step costs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from har_assets.evaluation.command import open_cohort, run_evaluation
from har_assets.evaluation.tracking import EvaluationTracker
from har_assets.home import HarHome
from har_assets.ml.variants import ExperimentConfig, build_variants


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", type=Path, required=True, help="folder of labelled participant folders")
    parser.add_argument("--home", type=Path, help="home whose MLflow store gets the runs (default: temporary)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--target", type=float, default=0.96, help="mean macro-F1 the default must reach")
    parser.add_argument("--posture", nargs="*", default=["sitting", "standing", "laying"])
    parser.add_argument("--posture-target", type=float, default=0.93)
    parser.add_argument("--margin", type=float, default=0.03, help="how far above the reference the default must be")
    parser.add_argument("--better-runs", type=float, default=0.8,
                        help="share of fold runs in which the default must beat the reference")
    parser.add_argument("--gravity", nargs="*", default=[], choices=["remove", "keep", "separate"],
                        help="also the default with these gravity modes")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=V,KEY=V",
                        help="also a named variant of the default (as for har evaluate)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        home = HarHome(args.home or Path(tmp))
        tracker = EvaluationTracker(home.local_mlflow_uri(), "har-real-people", home.mlflow_artifact_location())
        variants = build_variants(ExperimentConfig(), named=[f"gravity={m}:gravity={m}" for m in args.gravity]
                                  + args.variant,
                                  reference=True)
        out = run_evaluation(open_cohort(args.raw.resolve()), variants, args.folds, args.seeds, tracker,
                             progress=sys.stderr.isatty())
    print(out["report"])
    default = out["summary"]["variants"]["default"]
    verdicts = [(f"mean macro-F1 {default['macro_f1_mean']:.3f} >= {args.target}",
                 default["macro_f1_mean"] >= args.target)]
    for c in args.posture:
        f1 = default["per_class_f1"].get(c, float("nan"))
        verdicts.append((f"{c} F1 {f1:.3f} >= {args.posture_target}", f1 >= args.posture_target))
    reference = out["summary"]["variants"]["reference"]["macro_f1_mean"]
    verdicts.append((f"default {default['macro_f1_mean']:.3f} >= reference {reference:.3f} + {args.margin}",
                     default["macro_f1_mean"] >= reference + args.margin))
    ref_runs = {(f["fold"], f["seed"]): f["macro_f1"] for f in out["summary"]["variants"]["reference"]["folds"]
                if "macro_f1" in f}
    pairs = [(f["macro_f1"], ref_runs[(f["fold"], f["seed"])]) for f in default["folds"]
             if "macro_f1" in f and (f["fold"], f["seed"]) in ref_runs]
    better, runs = sum(d > r for d, r in pairs), len(pairs)
    verdicts.append((f"default better than the reference in {better} of {runs} fold runs "
                     f"(>= {args.better_runs:.0%})", runs > 0 and better >= args.better_runs * runs))
    print("\ntargets, default configuration:")
    for text, ok in verdicts:
        print(f"  {'met ' if ok else 'MISSED'}  {text}")
    return 0 if all(ok for _, ok in verdicts) and not out["failed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
