"""Raw files → windows: per-stage seconds, samples/s and peak memory, against a pandas baseline.

    python benchmarks/preprocess.py                      # 10, 60, 240-minute participants + backfill
    python benchmarks/preprocess.py --minutes 10 --skip-backfill
    python benchmarks/preprocess.py --long 1 24 168      # hours: read and windowed a block at a time, vs whole

Each measurement runs in a fresh process so its peak RSS is its own. The backfill part writes
30 demo participants (30 minutes each) into a temporary HAR_HOME, submits a backfill of the
`preprocess_participant` job over them and lets a real `dagster-daemon` launch the runs.
"""

from __future__ import annotations

import argparse
import ast
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from har_assets.cli import local_instance_yaml
from har_assets.config import PreprocessConfig
from har_assets.demo import write_demo_dataset, write_demo_participant
from har_assets.raw.layout import locate_files


def _peak_rss_mb() -> float:
    """This process's peak RSS since it started its program (VmHWM). Not ru_maxrss: Linux carries that across
    exec from the forked copy of the parent, so a child of a large parent would report the parent's size."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


def _stages(folder: str) -> dict:
    """Our path: polars + calamine reader, fusion, gravity handling, windows."""
    from har_assets.raw.reader import read_files
    from har_assets.signal.gravity import apply_gravity_handling
    from har_assets.signal.pipeline import fuse_recording, window_recording

    cfg = PreprocessConfig()
    t = {}
    start = time.perf_counter()
    rec = read_files(locate_files(Path(folder)), cfg)
    t["read"] = time.perf_counter() - start
    mark = time.perf_counter()
    fused, _ = fuse_recording(rec, cfg)
    t["fuse"] = time.perf_counter() - mark
    mark = time.perf_counter()
    filtered = apply_gravity_handling(fused, cfg)
    t["filter"] = time.perf_counter() - mark
    mark = time.perf_counter()
    ws = window_recording(rec.participant, filtered, cfg)
    t["window"] = time.perf_counter() - mark
    t["total"] = time.perf_counter() - start
    return {"seconds": t, "raw_samples": rec.accel.height + rec.gyro.height, "windows": len(ws),
            "peak_rss_mb": _peak_rss_mb()}


def _chunked(folder: str, spool_dir: str, out: str) -> dict:
    """The streamed path: spool both sensors block by block, then windows block by block (saved to `out`)."""

    from har_assets.raw.stream import spool_participant
    from har_assets.signal.chunked import chunked_recording

    cfg = PreprocessConfig()
    start = time.perf_counter()
    rec = spool_participant(locate_files(Path(folder)), cfg, Path(spool_dir))
    read_s = time.perf_counter() - start
    chunked = chunked_recording(rec.participant, rec.accel, rec.gyro, rec.labels, cfg)
    windows = 0
    with open(out, "wb") as sink:
        for block in chunked.blocks():
            windows += len(block)
            block.X.tofile(sink)
    stats = chunked.stats
    hours = (max(stats.accel.last_ms, stats.gyro.last_ms) - min(stats.accel.first_ms, stats.gyro.first_ms)) / 3.6e6
    return {"read_s": read_s, "total_s": time.perf_counter() - start, "windows": windows, "hours": hours,
            "raw_samples": rec.accel.rows + rec.gyro.rows, "peak_rss_mb": _peak_rss_mb()}


def _whole(folder: str, out: str) -> dict:
    """The whole-recording pass, its windows saved to `out` to compare."""
    from har_assets.raw.reader import read_participant
    from har_assets.signal.pipeline import preprocess

    cfg = PreprocessConfig()
    start = time.perf_counter()
    windows, _ = preprocess(read_participant(Path(folder), cfg), cfg)
    seconds = time.perf_counter() - start
    windows.X.tofile(out)
    return {"total_s": seconds, "windows": len(windows), "peak_rss_mb": _peak_rss_mb()}


def bench_long(hours: list[float], formats: list[str], whole_up_to_h: float, workdir: Path) -> None:
    """Issue targets: peak RSS <= 1.5 GB, per-hour cost within 20 % from 1 h to 7 days, chunked = whole."""
    print("## Long recordings, read and windowed a block at a time (fresh process per measurement)\n")
    print("| format | hours | raw MB | raw samples | read s | total s | s per hour | windows | peak RSS MB "
          "| whole s | whole peak RSS MB | windows identical |")
    print("|" + "---|" * 12)
    per_hour: dict[str, list[float]] = {}
    peaks = []
    for fmt in formats:
        for h in hours:
            out = workdir / f"{fmt}-{h:g}h"
            try:  # in a child: this process stays small
                _in_child(write_demo_participant, out / "p", 0, seed=7, minutes=h * 60, fmt=fmt)
            except ValueError as exc:  # e.g. longer than one worksheet holds
                print(f"| {fmt} | {h:g} | not written: {exc} |" + " |" * 9, flush=True)
                continue
            folder = str(out / "p")
            raw_mb = sum(f.stat().st_size for f in (out / "p").iterdir()) / 1e6
            ours = _in_child(_chunked, folder, str(out / "spool"), str(out / "chunked.f32"))
            shutil.rmtree(out / "spool")
            recorded = ours["hours"]  # from the first to the last sample
            per_hour.setdefault(fmt, []).append(ours["total_s"] / recorded)
            peaks.append(ours["peak_rss_mb"])
            whole_s = whole_mb = same = "-"
            if h <= whole_up_to_h:
                whole = _in_child(_whole, folder, str(out / "whole.f32"))
                whole_s, whole_mb = f"{whole['total_s']:.1f}", f"{whole['peak_rss_mb']:.0f}"
                same = "yes" if (out / "chunked.f32").read_bytes() == (out / "whole.f32").read_bytes() else "NO"
            print(f"| {fmt} | {recorded:.1f} | {raw_mb:,.0f} | {ours['raw_samples']:,} | {ours['read_s']:.1f} "
                  f"| {ours['total_s']:.1f} | {ours['total_s'] / recorded:.2f} | {ours['windows']:,} "
                  f"| {ours['peak_rss_mb']:.0f} | {whole_s} | {whole_mb} | {same} |", flush=True)
            shutil.rmtree(out)
    print(f"\n- peak RSS: at most {max(peaks):.0f} MB (target 1,536 MB): {'met' if max(peaks) <= 1536 else 'MISSED'}")
    for fmt, costs in per_hour.items():
        spread = max(costs) / min(costs) - 1
        print(f"- {fmt}: seconds per hour from {min(costs):.2f} to {max(costs):.2f}, {spread:.0%} apart "
              f"(target within 20 %): {'met' if spread <= 0.2 else 'MISSED'}")


def _read_only(folder: str, engine: str) -> dict:
    """Only the XLSX reading, with polars' calamine (fastexcel) or openpyxl engine."""
    import polars as pl

    start = time.perf_counter()
    files = locate_files(Path(folder))
    rows = sum(pl.read_excel(p, engine=engine, infer_schema_length=0).height
               for p in (files.accelerometer, files.gyroscope))
    return {"seconds": time.perf_counter() - start, "rows": rows, "peak_rss_mb": _peak_rss_mb()}


def _pandas_baseline(folder: str) -> dict:
    """The straightforward way: pandas + openpyxl + ast.literal_eval, row by row."""
    import numpy as np
    import pandas as pd

    start = time.perf_counter()
    files = locate_files(Path(folder))
    samples = 0
    for path in (files.accelerometer, files.gyroscope):
        df = pd.read_excel(path, engine="openpyxl")
        value_cols = [c for c in df.columns if c.startswith("calibrated_")]
        starts = pd.to_datetime(df["timestamp"], format="%m/%d/%Y, %I:%M:%S %p", errors="coerce")
        with warnings.catch_warnings():  # the other timestamp styles: pandas guesses each element (dateutil)
            warnings.filterwarnings("ignore", message="Could not infer format")
            starts = starts.fillna(pd.to_datetime(df["timestamp"], errors="coerce"))
        times, values = [], []
        for i, row in df.iterrows():
            offsets = [float(v) for v in ast.literal_eval(row["sample_time_offset"])]
            base = starts[i].value / 1e6 + float(row["timestamp_ms"])
            times.extend(base + o for o in offsets)
            values.append(np.array([[float(v) for v in ast.literal_eval(row[c])] for c in value_cols]).T)
        frame = pd.DataFrame(np.vstack(values), columns=value_cols)
        frame.insert(0, "t_ms", times)
        samples += len(frame)
    return {"seconds": time.perf_counter() - start, "raw_samples": samples, "peak_rss_mb": _peak_rss_mb()}


def _in_child(fn, *args, **kwargs):
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args, kwargs)


def bench_stages(minutes: list[float], workdir: Path) -> None:
    print("## Raw XLSX → windows, one participant (fresh process per measurement)\n")
    print("| minutes | raw samples | read s | fuse s | filter s | window s | total s | samples/s | windows "
          "| peak RSS MB | calamine read s | openpyxl read s | pandas+literal_eval read s | pandas samples/s "
          "| pandas peak MB |")
    print("|" + "---|" * 15)
    for m in minutes:
        out = workdir / f"m{m:g}"
        write_demo_dataset(out, 1, seed=7, minutes=m)
        folder = str(next(out.iterdir()))
        ours = _in_child(_stages, folder)
        calamine = _in_child(_read_only, folder, "calamine")
        openpyxl = _in_child(_read_only, folder, "openpyxl")
        pandas = _in_child(_pandas_baseline, folder)
        s = ours["seconds"]
        print(f"| {m:g} | {ours['raw_samples']:,} | {s['read']:.2f} | {s['fuse']:.2f} | {s['filter']:.2f} "
              f"| {s['window']:.2f} | {s['total']:.2f} | {ours['raw_samples'] / s['total']:,.0f} | {ours['windows']:,} "
              f"| {ours['peak_rss_mb']:.0f} | {calamine['seconds']:.2f} | {openpyxl['seconds']:.2f} "
              f"| {pandas['seconds']:.2f} | {pandas['raw_samples'] / pandas['seconds']:,.0f} "
              f"| {pandas['peak_rss_mb']:.0f} |", flush=True)


def _graphql_free_wait(instance, n_runs: int, timeout_s: float) -> tuple[int, int]:
    from dagster import DagsterRunStatus, RunsFilter

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        done = instance.get_runs_count(RunsFilter(statuses=[DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE]))
        if done >= n_runs:
            break
        time.sleep(1.0)
    ok = instance.get_runs_count(RunsFilter(statuses=[DagsterRunStatus.SUCCESS]))
    failed = instance.get_runs_count(RunsFilter(statuses=[DagsterRunStatus.FAILURE]))
    return ok, failed


def bench_backfill(participants: int, minutes: float, workdir: Path, timeout_s: float) -> None:
    import dagster as dg

    home = workdir / "backfill_home"
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text(local_instance_yaml())
    start = time.perf_counter()
    ids = write_demo_dataset(home / "raw", participants, seed=11, minutes=minutes)
    write_s = time.perf_counter() - start
    env = {**os.environ, "HAR_HOME": str(home), "DAGSTER_HOME": str(dagster_home), "HAR_AUTOSTART_SENSOR": "0",
           "HAR_AUTOSTART_RETRAIN": "0", "HAR_AUTOSTART_SCORING": "0"}
    os.environ.update({k: env[k] for k in ("HAR_HOME", "DAGSTER_HOME")})
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions("participants", ids)
    bin_dir = Path(sys.executable).parent
    start = time.perf_counter()
    subprocess.run([str(bin_dir / "dagster"), "job", "backfill", "-m", "har_assets.definitions", "-j",
                    "preprocess_participant", "--partitions", ",".join(ids), "--noprompt"],
                   env=env, check=True, capture_output=True)
    submitted_s = time.perf_counter() - start
    daemon = subprocess.Popen([str(bin_dir / "dagster-daemon"), "run", "-m", "har_assets.definitions"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ok, failed = _graphql_free_wait(instance, len(ids), timeout_s)
        wall = time.perf_counter() - start
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    raw_mb = sum(f.stat().st_size for f in (home / "raw").rglob("*") if f.is_file()) / 1e6
    print(f"\n## Backfill: {participants} participants × {minutes:g} min ({raw_mb:.0f} MB of XLSX) → windows\n")
    print(f"- demo data written in {write_s:.1f} s")
    print(f"- backfill submitted in {submitted_s:.1f} s; wall time until every run finished: {wall:.1f} s "
          f"({wall / participants:.2f} s per participant)")
    print(f"- runs: {ok} succeeded, {failed} failed; policy: one run per participant, steps in-process, "
          f"at most 2 runs at a time (instance run queue)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 60, 240])
    parser.add_argument("--backfill-participants", type=int, default=30)
    parser.add_argument("--backfill-minutes", type=float, default=30)
    parser.add_argument("--backfill-timeout", type=float, default=1200)
    parser.add_argument("--skip-backfill", action="store_true")
    parser.add_argument("--long", type=float, nargs="+", metavar="HOURS",
                        help="only the long-recording benchmark, for these lengths in hours")
    parser.add_argument("--formats", nargs="+", default=["csv", "xlsx"], choices=["csv", "xlsx"])
    parser.add_argument("--whole-up-to", type=float, default=24.0, metavar="HOURS",
                        help="also run the whole-recording pass (and compare) up to this length")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="har-bench-"))
    try:
        if args.long:
            bench_long(args.long, args.formats, args.whole_up_to, workdir)
            return
        bench_stages(args.minutes, workdir)
        if not args.skip_backfill:
            bench_backfill(args.backfill_participants, args.backfill_minutes, workdir, args.backfill_timeout)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
