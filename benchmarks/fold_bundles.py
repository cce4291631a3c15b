"""Fold models of the default configuration on a labelled cohort, trained once and kept as bundles.

    python benchmarks/fold_bundles.py --raw ../shared/data/hapt-dev --cache /tmp/har-fold-bundles

Each participant fold trains the default configuration on the fold's training people (as `har evaluate` does) and
saves the whole bundle (network, scaler, classes, decoder) under `--cache/fold<i>/`, with the fold's people in
`fold<i>.json`. Benchmarks that compare what happens *after* training (`benchmarks/reliability.py`) read them
instead of training again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from har_assets.evaluation.command import open_cohort
from har_assets.ml.bundle import ModelBundle
from har_assets.ml.crossval import participant_folds
from har_assets.ml.datasets import WindowSets
from har_assets.ml.experiment import run_experiment
from har_assets.ml.split import DatasetSplit
from har_assets.ml.variants import ExperimentConfig


@dataclass
class FoldBundle:
    index: int
    train: list[str]
    test: list[str]
    bundle: ModelBundle


def fold_bundles(windows: WindowSets, cfg: ExperimentConfig, folds: int, cache: Path) -> list[FoldBundle]:
    """Every fold's bundle (trained now, or read from `cache`)."""
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    for fold in participant_folds(sorted(windows), folds, cfg.split.validation_share, cfg.split.seed):
        meta_file, folder = cache / f"fold{fold.index}.json", cache / f"fold{fold.index}"
        if not meta_file.exists():
            t0 = time.perf_counter()
            split = DatasetSplit(train=fold.train, validation=fold.validation, test=fold.test, seed=cfg.split.seed)
            exp = run_experiment(windows, split, cfg.model, cfg.train, cfg.decoding, evaluate_test=False)
            ModelBundle(model=exp.train.model, model_config=cfg.model, preprocess=cfg.preprocess, scaler=exp.scaler,
                        classes=exp.classes, decoder=exp.decoder).save(folder)
            meta_file.write_text(json.dumps({"train": [*fold.train, *fold.validation], "test": fold.test,
                                             "seconds": round(time.perf_counter() - t0, 1)}))
            print(f"trained fold {fold.index} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        meta = json.loads(meta_file.read_text())
        out.append(FoldBundle(fold.index, meta["train"], meta["test"], ModelBundle.load(folder)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    cfg = ExperimentConfig()
    windows = open_cohort(args.raw).windows(cfg.preprocess)
    for fb in fold_bundles(windows, cfg, args.folds, args.cache):
        print(f"fold {fb.index}: test {fb.test}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
