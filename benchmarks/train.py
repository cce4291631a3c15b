"""Training and batch-inference speed of the CNN-BiLSTM: seconds per epoch, windows/s, peak memory.

    python benchmarks/train.py                         # 1,000 and 8,000 windows, CPU (+ CUDA if present)
    python benchmarks/train.py --sizes 2000 --epochs 5 --devices cpu
    python benchmarks/train.py --sizes 4000 --threads 1 2 4 --busy 0 1   # threads, and another busy process

The windows are real demo windows (12 participants x 8 min, default preprocessing), tiled to each
size. Every (device, size) runs in a fresh process, so its peak RSS is its own; `tracemalloc`
adds the peak of Python/NumPy allocations (torch's own CPU buffers are only in the RSS) and, on
CUDA, `torch.cuda.max_memory_allocated`. Training uses the default ModelConfig/TrainConfig (rotation
augmentation included) without a validation set, so every epoch runs; the first epoch (warm-up,
first touch of fresh memory) is reported separately, the others as their median. Inference is
`predict_proba` (batch 512) after one warm-up pass. `--threads` sets torch's intra-op threads per
measurement (more threads than cores oversubscribes them); `--busy N` runs N other processes that
keep one core each busy meanwhile, as a Dagster daemon or a second training would.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

from har_assets.config import PreprocessConfig
from har_assets.demo import write_demo_dataset
from har_assets.ml.hyperparams import ModelConfig, TrainConfig
from har_assets.ml.inference import predict_proba
from har_assets.ml.scaler import ChannelScaler
from har_assets.ml.training import train_model
from har_assets.raw.layout import locate_files
from har_assets.raw.reader import read_files
from har_assets.signal.pipeline import preprocess


def demo_windows(participants: int, minutes: float) -> tuple[np.ndarray, np.ndarray, list[str], ChannelScaler]:
    """Scaled labelled demo windows (default preprocessing), class indices, classes and the scaler."""
    cfg = PreprocessConfig()
    with tempfile.TemporaryDirectory() as tmp:
        ids = write_demo_dataset(Path(tmp), participants, minutes=minutes, fmt="csv")
        sets = [preprocess(read_files(locate_files(Path(tmp) / pid), cfg), cfg)[0] for pid in ids]
    X = np.concatenate([ws.X[ws.labeled] for ws in sets])
    labels = np.concatenate([ws.labels[ws.labeled] for ws in sets])
    classes = sorted(set(labels.tolist()))
    y = np.searchsorted(classes, labels).astype(np.int64)
    scaler = ChannelScaler.fit(X, cfg.channels)
    return scaler.transform(X), y, classes, scaler


def measure(device: str, n: int, epochs: int, threads: int, data: tuple) -> dict:
    """One (device, size, threads) measurement; runs in its own process."""
    torch.set_num_threads(threads)
    X, y, classes, scaler = data
    X, y = np.resize(X, (n, *X.shape[1:])), np.resize(y, n)
    tracemalloc.start()
    seconds: list[float] = []
    model = train_model(X, y, None, None, classes, ModelConfig(), TrainConfig(epochs=epochs, device=device),
                        on_epoch=lambda s: seconds.append(s.seconds), scaler=scaler).model
    predict_proba(model, X[:1024], device=device)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    predict_proba(model, X, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
    infer_s = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    steady = float(np.median(seconds[1:] or seconds))  # the median resists a stray stall (shared host, first touch)
    return {
        "device": device, "windows": n, "threads": torch.get_num_threads(), "epochs": len(seconds),
        "first_epoch_s": seconds[0],
        "epoch_s": steady, "train_windows_per_s": n / steady,
        "infer_windows_per_s": n / infer_s, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "tracemalloc_peak_mb": peak / 2**20,
        "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None,
    }


def _child(queue: mp.Queue, *args) -> None:
    queue.put(measure(*args))


def _spin(stop: mp.Event) -> None:
    while not stop.is_set():
        sum(range(10_000))


def _measure_isolated(ctx, busy: int, *args) -> dict:
    """`measure(*args)` in a fresh process while `busy` other processes keep one core each busy."""
    stop = ctx.Event()
    hogs = [ctx.Process(target=_spin, args=(stop,)) for _ in range(busy)]
    for hog in hogs:
        hog.start()
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, *args))
    proc.start()
    row = queue.get()
    proc.join()
    stop.set()
    for hog in hogs:
        hog.join()
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 8000], help="windows per dataset")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"], choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()],
                        help="torch CPU threads (default: torch's own choice)")
    parser.add_argument("--busy", type=int, nargs="+", default=[0], help="other processes busy on one core each")
    args = parser.parse_args(argv)

    data = demo_windows(12, 8.0)
    print(f"{len(data[1])} labelled demo windows of shape {data[0].shape[1:]}, {len(data[2])} classes; "
          f"torch {torch.__version__}; {len(os.sched_getaffinity(0))} usable cores; torch's default "
          f"{torch.get_num_threads()} intra-op and {torch.get_num_interop_threads()} inter-op threads; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}", file=sys.stderr)
    ctx = mp.get_context("spawn")
    rows = []
    for device in args.devices:
        if device == "cuda" and not torch.cuda.is_available():
            print("cuda: skipped (torch.cuda.is_available() is False)")
            continue
        thread_counts = args.threads if device == "cpu" else args.threads[:1]
        for n, threads, busy in itertools.product(args.sizes, thread_counts, args.busy):
            rows.append(_measure_isolated(ctx, busy, device, n, args.epochs, threads, data) | {"busy": busy})
    print(f"{'device':<7}{'windows':>8}{'threads':>8}{'busy':>5}{'1st epoch s':>12}{'s/epoch':>9}{'train win/s':>12}"
          f"{'infer win/s':>12}{'peak RSS MB':>12}{'tracemalloc MB':>15}{'CUDA MB':>9}")
    for r in rows:
        cuda = f"{r['cuda_peak_mb']:.0f}" if r["cuda_peak_mb"] is not None else "-"
        print(f"{r['device']:<7}{r['windows']:>8}{r['threads']:>8}{r['busy']:>5}{r['first_epoch_s']:>12.2f}"
              f"{r['epoch_s']:>9.2f}"
              f"{r['train_windows_per_s']:>12.0f}{r['infer_windows_per_s']:>12.0f}{r['peak_rss_mb']:>12.0f}"
              f"{r['tracemalloc_peak_mb']:>15.1f}{cuda:>9}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
