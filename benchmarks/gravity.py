"""Which gravity handling generalises to unseen people? Leave-participants-out macro-F1 per mode.

    python benchmarks/gravity.py                          # 12 demo participants x 8 min, 4 folds, 1 seed
    python benchmarks/gravity.py --folds 4 --seeds 0 1 --participants 12 --minutes 8

Writes the demo dataset (CSV) into a temporary folder, reads and fuses every participant once,
then for each mode (remove, keep, separate) cuts windows and runs K-fold cross-validation over
*participants*: each fold's test participants are never seen in training; the next fold's
participants (two of them) serve for early stopping. Training uses the default ModelConfig and
TrainConfig (the ones `har pipeline` uses), the same code path as the `model` asset
(`har_assets.ml.experiment.run_experiment`). Prints per-fold and mean +- sd macro-F1 and accuracy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

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


def folds(people: list[str], k: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """(test, validation) participants per fold: seeded order cut into k groups; validation from the next group."""
    order = sorted(people, key=lambda p: participant_rank(p, seed))
    groups = [order[i::k] for i in range(k)]
    return [(sorted(groups[i]), sorted(groups[(i + 1) % k][:2])) for i in range(k)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--participants", type=int, default=12)
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (each repeats all folds)")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the demo dataset")
    parser.add_argument("--epochs", type=int, default=None, help="override TrainConfig.epochs")
    args = parser.parse_args(argv)

    base = PreprocessConfig()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        ids = write_demo_dataset(Path(tmp), args.participants, seed=args.data_seed, minutes=args.minutes, fmt="csv")
        fused = {pid: fuse_recording(read_files(locate_files(Path(tmp) / pid), base), base)[0] for pid in ids}
    print(f"{len(ids)} demo participants x {args.minutes:g} min read and fused in {time.perf_counter() - start:.1f} s;"
          f" torch threads {torch.get_num_threads()}", file=sys.stderr)

    model_cfg = ModelConfig()
    results: dict[str, list[dict]] = {}
    for mode in GravityMode:
        cfg = PreprocessConfig.model_validate(base.model_dump() | {"gravity": mode})
        windows = {pid: window_recording(pid, apply_gravity_handling(frame, cfg), cfg) for pid, frame in fused.items()}
        for seed in args.seeds:
            train_cfg = TrainConfig(seed=seed, **({"epochs": args.epochs} if args.epochs else {}))
            for i, (test, val) in enumerate(folds(ids, args.folds)):
                split = split_participants(ids, SplitConfig(test=test, validation=val))
                t0 = time.perf_counter()
                res = run_experiment(windows, split, model_cfg, train_cfg)
                row = {"fold": i, "seed": seed, "test": test, "macro_f1": res.test["macro_f1"],
                       "accuracy": res.test["accuracy"], "epochs": len(res.train.history),
                       "seconds": time.perf_counter() - t0}
                results.setdefault(mode.value, []).append(row)
                print(f"{mode.value:<9} seed {seed} fold {i} test {','.join(test)}: macro-F1 {row['macro_f1']:.3f} "
                      f"accuracy {row['accuracy']:.3f} ({row['epochs']} epochs, {row['seconds']:.0f} s)",
                      file=sys.stderr, flush=True)

    print(f"\nLeave-participants-out ({args.folds}-fold over {len(ids)} participants x {args.minutes:g} min, "
          f"seeds {args.seeds}, default model and training config)")
    print(f"{'gravity':<10}{'macro-F1 mean':>14}{'sd':>7}{'min':>7}{'max':>7}{'accuracy':>10}   per fold")
    best = None
    for mode, rows in results.items():
        f1 = [r["macro_f1"] for r in rows]
        acc = statistics.mean(r["accuracy"] for r in rows)
        sd = statistics.stdev(f1) if len(f1) > 1 else 0.0
        print(f"{mode:<10}{statistics.mean(f1):>14.3f}{sd:>7.3f}{min(f1):>7.3f}{max(f1):>7.3f}{acc:>10.3f}   "
              + " ".join(f"{v:.3f}" for v in f1))
        if best is None or statistics.mean(f1) > best[1]:
            best = (mode, statistics.mean(f1))
    print(f"best: {best[0]} (mean macro-F1 {best[1]:.3f})")
    for mode, rows in results.items():  # same folds and seeds: paired differences against the best mode
        if mode != best[0]:
            diffs = [b["macro_f1"] - r["macro_f1"] for b, r in zip(results[best[0]], rows, strict=True)]
            print(f"  {best[0]} - {mode}: mean {statistics.mean(diffs):+.3f} macro-F1, better in "
                  f"{sum(d > 0 for d in diffs)} of {len(diffs)} fold runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
