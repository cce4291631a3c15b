"""Training and batch-inference speed of the CNN-BiLSTM: seconds per epoch, windows/s, peak memory.

    python benchmarks/train.py                         # 1,000 and 8,000 windows, CPU (+ CUDA if present)
    python benchmarks/train.py --sizes 2000 --epochs 5 --devices cpu

The windows are real demo windows (12 participants x 8 min, default preprocessing), tiled to each
size. Every (device, size) runs in a fresh process, so its peak RSS is its own; `tracemalloc`
adds the peak of Python/NumPy allocations (torch's own CPU buffers are only in the RSS) and, on
CUDA, `torch.cuda.max_memory_allocated`. Training uses the default ModelConfig/TrainConfig with
early stopping off (no validation set), so every epoch runs; the first epoch (warm-up, first
touch of fresh memory) is reported separately, the others as their median. Inference is
`predict_proba` (batch 512) after one warm-up pass.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
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
from har_assets.ml.training import train_model
from har_assets.raw.layout import locate_files
from har_assets.raw.reader import read_files
from har_assets.signal.pipeline import preprocess


def demo_windows(participants: int, minutes: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
    cfg = PreprocessConfig()
    with tempfile.TemporaryDirectory() as tmp:
        ids = write_demo_dataset(Path(tmp), participants, minutes=minutes, fmt="csv")
        sets = [preprocess(read_files(locate_files(Path(tmp) / pid), cfg), cfg)[0] for pid in ids]
    X = np.concatenate([ws.X[ws.labeled] for ws in sets])
    labels = np.concatenate([ws.labels[ws.labeled] for ws in sets])
    classes = sorted(set(labels.tolist()))
    y = np.searchsorted(classes, labels).astype(np.int64)
    X = (X - X.mean(axis=(0, 1))) / X.std(axis=(0, 1))
    return X.astype(np.float32), y, classes


def measure(device: str, n: int, epochs: int, data: tuple[np.ndarray, np.ndarray, list[str]]) -> dict:
    """One (device, size) measurement; runs in its own process."""
    X, y, classes = data
    X, y = np.resize(X, (n, *X.shape[1:])), np.resize(y, n)
    tracemalloc.start()
    seconds: list[float] = []
    model = train_model(X, y, None, None, classes, ModelConfig(), TrainConfig(epochs=epochs, device=device),
                        on_epoch=lambda s: seconds.append(s.seconds)).model
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
        "device": device, "windows": n, "epochs": len(seconds), "first_epoch_s": seconds[0],
        "epoch_s": steady, "train_windows_per_s": n / steady,
        "infer_windows_per_s": n / infer_s, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "tracemalloc_peak_mb": peak / 2**20,
        "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None,
    }


def _child(queue: mp.Queue, *args) -> None:
    queue.put(measure(*args))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 8000], help="windows per dataset")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"], choices=["cpu", "cuda"])
    args = parser.parse_args(argv)

    data = demo_windows(12, 8.0)
    print(f"{len(data[1])} labelled demo windows of shape {data[0].shape[1:]}, {len(data[2])} classes; "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads", file=sys.stderr)
    ctx = mp.get_context("spawn")
    rows = []
    for device in args.devices:
        if device == "cuda" and not torch.cuda.is_available():
            print("cuda: skipped (torch.cuda.is_available() is False)")
            continue
        for n in args.sizes:
            queue = ctx.Queue()
            proc = ctx.Process(target=_child, args=(queue, device, n, args.epochs, data))
            proc.start()
            rows.append(queue.get())
            proc.join()
    print(f"{'device':<7}{'windows':>8}{'1st epoch s':>12}{'s/epoch':>9}{'train win/s':>12}{'infer win/s':>12}"
          f"{'peak RSS MB':>12}{'tracemalloc MB':>15}{'CUDA MB':>9}")
    for r in rows:
        cuda = f"{r['cuda_peak_mb']:.0f}" if r["cuda_peak_mb"] is not None else "-"
        print(f"{r['device']:<7}{r['windows']:>8}{r['first_epoch_s']:>12.2f}{r['epoch_s']:>9.2f}"
              f"{r['train_windows_per_s']:>12.0f}{r['infer_windows_per_s']:>12.0f}{r['peak_rss_mb']:>12.0f}"
              f"{r['tracemalloc_peak_mb']:>15.1f}{cuda:>9}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
