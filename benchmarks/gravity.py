"""Which gravity handling generalises to unseen people? Leave-participants-out macro-F1 per mode.

    python benchmarks/gravity.py                                  # 12 demo participants x 8 min, 4 folds
    python benchmarks/gravity.py --seeds 0 1 --data-seeds 0 1 2   # the README's figures (~16 min, 2 cores)
    python benchmarks/gravity.py --raw $HAR_HOME/raw --seeds 0 1  # your own labelled participants

Reads and fuses every participant once (demo datasets are written as CSV into a temporary
folder; `--raw` reads real participant folders with a labels.csv, with the default
preprocessing config), then for each mode (remove, keep, separate) cuts windows and runs K-fold
cross-validation over *participants*: each fold's test participants are never seen in training;
the next fold's participants (two of them) serve for early stopping. Training uses the default
ModelConfig and TrainConfig (the ones `har pipeline` uses), the same code path as the `model`
asset (`har_assets.ml.experiment.run_experiment`). Prints per-fold and mean +- sd macro-F1 and
accuracy per dataset and, over several datasets, pooled, with paired differences to the best mode.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import torch

from har_assets.config import GravityMode, PreprocessConfig
from har_assets.demo import write_demo_dataset
from har_assets.ml.experiment import run_experiment
from har_assets.ml.hyperparams import ModelConfig, TrainConfig
from har_assets.ml.split import SplitConfig, participant_rank, split_participants
from har_assets.raw.layout import locate_files
from har_assets.raw.reader import read_files
from har_assets.signal.gravity import apply_gravity_handling
from har_assets.signal.pipeline import fuse_recording, window_recording

Fused = dict[str, pl.DataFrame]


def folds(people: list[str], k: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """(test, validation) participants per fold: seeded order cut into k groups; validation from the next group."""
    order = sorted(people, key=lambda p: participant_rank(p, seed))
    groups = [order[i::k] for i in range(k)]
    return [(sorted(groups[i]), sorted(groups[(i + 1) % k][:2])) for i in range(k)]


def fuse_folder(folder: Path, ids: list[str], cfg: PreprocessConfig) -> Fused:
    return {pid: fuse_recording(read_files(locate_files(folder / pid), cfg), cfg)[0] for pid in ids}


def load_datasets(args: argparse.Namespace, cfg: PreprocessConfig) -> list[tuple[str, Fused]]:
    """(name, fused recordings) of the real folder given by --raw, else of each demo dataset."""
    if args.raw:
        ids = sorted(p.name for p in args.raw.iterdir() if (p / "labels.csv").is_file())
        return [(str(args.raw), fuse_folder(args.raw, ids, cfg))]
    datasets = []
    for data_seed in args.data_seeds:
        with tempfile.TemporaryDirectory() as tmp:
            ids = write_demo_dataset(Path(tmp), args.participants, seed=data_seed, minutes=args.minutes, fmt="csv")
            datasets.append((f"demo seed {data_seed}", fuse_folder(Path(tmp), ids, cfg)))
    return datasets


def cross_validate(fused: Fused, mode: GravityMode, base: PreprocessConfig, args: argparse.Namespace,
                   name: str) -> list[dict]:
    cfg = PreprocessConfig.model_validate(base.model_dump() | {"gravity": mode})
    windows = {pid: window_recording(pid, apply_gravity_handling(frame, cfg), cfg) for pid, frame in fused.items()}
    rows = []
    for seed in args.seeds:
        train_cfg = TrainConfig(seed=seed, **({"epochs": args.epochs} if args.epochs else {}))
        for i, (test, val) in enumerate(folds(sorted(fused), args.folds)):
            split = split_participants(sorted(fused), SplitConfig(test=test, validation=val))
            t0 = time.perf_counter()
            res = run_experiment(windows, split, ModelConfig(), train_cfg)
            row = {"fold": i, "seed": seed, "test": test, "macro_f1": res.test["macro_f1"],
                   "accuracy": res.test["accuracy"], "epochs": len(res.train.history),
                   "seconds": time.perf_counter() - t0}
            rows.append(row)
            print(f"{name}: {mode.value:<9} seed {seed} fold {i} test {','.join(test)}: macro-F1 "
                  f"{row['macro_f1']:.3f} accuracy {row['accuracy']:.3f} ({row['epochs']} epochs, "
                  f"{row['seconds']:.0f} s)", file=sys.stderr, flush=True)
    return rows


def report(title: str, results: dict[str, list[dict]]) -> None:
    """Mean, sd, range and per-fold macro-F1 per mode; paired differences of the best mode to the others."""
    print(f"\n{title}")
    print(f"{'gravity':<10}{'macro-F1 mean':>14}{'sd':>7}{'min':>7}{'max':>7}{'accuracy':>10}   per fold")
    means = {mode: statistics.mean(r["macro_f1"] for r in rows) for mode, rows in results.items()}
    for mode, rows in results.items():
        f1 = [r["macro_f1"] for r in rows]
        sd = statistics.stdev(f1) if len(f1) > 1 else 0.0
        print(f"{mode:<10}{means[mode]:>14.3f}{sd:>7.3f}{min(f1):>7.3f}{max(f1):>7.3f}"
              f"{statistics.mean(r['accuracy'] for r in rows):>10.3f}   " + " ".join(f"{v:.3f}" for v in f1))
    best = max(means, key=lambda m: means[m])
    print(f"best: {best} (mean macro-F1 {means[best]:.3f})")
    for mode, rows in results.items():  # same folds and seeds: paired differences against the best mode
        if mode != best:
            diffs = [b["macro_f1"] - r["macro_f1"] for b, r in zip(results[best], rows, strict=True)]
            print(f"  {best} - {mode}: mean {statistics.mean(diffs):+.3f} macro-F1, better in "
                  f"{sum(d > 0 for d in diffs)} of {len(diffs)} fold runs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", type=Path, help="folder of real participant folders (those with labels.csv)")
    parser.add_argument("--participants", type=int, default=12, help="demo participants per dataset")
    parser.add_argument("--minutes", type=float, default=8.0, help="minutes per demo participant")
    parser.add_argument("--data-seeds", type=int, nargs="+", default=[0], help="demo datasets (their seeds)")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (each repeats all folds)")
    parser.add_argument("--epochs", type=int, default=None, help="override TrainConfig.epochs")
    args = parser.parse_args(argv)

    base = PreprocessConfig()
    start = time.perf_counter()
    datasets = load_datasets(args, base)
    print(f"{len(datasets)} dataset(s), {sum(len(f) for _, f in datasets)} participants read and fused in "
          f"{time.perf_counter() - start:.1f} s; torch threads {torch.get_num_threads()}", file=sys.stderr)
    pooled: dict[str, list[dict]] = {}
    for name, fused in datasets:
        results = {mode.value: cross_validate(fused, mode, base, args, name) for mode in GravityMode}
        report(f"{name}: leave-participants-out, {args.folds}-fold over {len(fused)} participants, "
               f"training seeds {args.seeds}, default model and training config", results)
        for mode, rows in results.items():
            pooled.setdefault(mode, []).extend(rows)
    if len(datasets) > 1:
        report(f"pooled over {len(datasets)} datasets", pooled)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
