"""Are the data-quality checks true on real recordings? Every check on every participant, and on broken copies.

    python benchmarks/checks.py --raw ../shared/data/hapt-dev      # real people: every check must pass
    python benchmarks/checks.py                                     # 6 demo participants

A check that fails on good recordings teaches users to ignore checks; one that passes on broken
ones protects nothing. First every participant of the folder goes through the checks of all
four preprocessing stages (default config). Then copies of the first participants are broken in
the ways the checks exist for (wrong unit declared, wrong rate declared, labels from another
day, one sensor stopping half way, a NaN, a repeated timestamp), and the script says what
caught each: a failed check, or the strict reader refusing the file. Prints one table each;
exits 1 if a check fails on a good participant or a broken copy gets through.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import polars as pl

from har_assets.config import PreprocessConfig
from har_assets.demo import write_demo_dataset
from har_assets.errors import PipelineDataError, RawDataError
from har_assets.raw.layout import locate_files
from har_assets.raw.reader import load_table, read_files
from har_assets.signal import checks
from har_assets.signal.gravity import apply_gravity_handling
from har_assets.signal.pipeline import fuse_recording, window_recording


def all_checks(folder: Path, cfg: PreprocessConfig) -> dict[str, bool]:
    """check name -> passed, over the four stages of one participant."""
    rec = read_files(locate_files(folder), cfg)
    fused, stats = fuse_recording(rec, cfg)
    filtered = apply_gravity_handling(fused, cfg)
    windows = window_recording(rec.participant, filtered, cfg)
    outcomes = {f"raw.{o.name}": o for o in checks.raw_checks(rec, cfg)}
    outcomes |= {f"fused.{o.name}": o for o in checks.fused_checks(fused, stats, cfg)}
    outcomes |= {f"filtered.{o.name}": o for o in checks.filtered_checks(filtered, cfg)}
    outcomes |= {f"windows.{o.name}": o for o in checks.window_checks(windows)}
    return {name: o.passed for name, o in outcomes.items()} | {"_detail": "; ".join(
        f"{n}: {o.detail}" for n, o in outcomes.items() if not o.passed)}


def as_csv(folder: Path, sensor: str) -> tuple[pl.DataFrame, Path]:
    """The sensor table (text cells) and the CSV path it is to be written to; the original file is removed."""
    path = locate_files(folder).accelerometer if sensor == "accelerometer" else locate_files(folder).gyroscope
    table = load_table(folder.name, path)
    path.unlink()
    return table, folder / f"{sensor}.csv"


def declare(folder: Path, meta: dict) -> None:
    (folder / "participant.json").write_text(json.dumps(meta))


def shift_labels(folder: Path) -> None:
    labels = pl.read_csv(folder / "labels.csv")
    shifted = labels.with_columns(
        (pl.col(c).str.to_datetime(time_zone="UTC") + pl.duration(days=1)).dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        for c in ("start", "end"))
    shifted.write_csv(folder / "labels.csv")


def stop_half_way(folder: Path) -> None:
    table, path = as_csv(folder, "gyroscope")
    table.head(table.height // 2).write_csv(path)


def nan_cell(folder: Path) -> None:
    table, path = as_csv(folder, "accelerometer")
    cell = table["calibrated_accel_x"][3]
    table.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(pl.lit(cell.replace(cell.split(",")[1], " NaN", 1)))
                       .otherwise(pl.col("calibrated_accel_x")).alias("calibrated_accel_x")).write_csv(path)


def repeat_batch(folder: Path) -> None:
    table, path = as_csv(folder, "gyroscope")
    pl.concat([table.head(10), table.slice(9, 1), table.slice(10)]).write_csv(path)


BREAKS: dict[str, tuple[Callable[[Path], None], str]] = {  # name -> (how, what should catch it)
    "accelerometer declared in g": (lambda f: declare(f, {"units": {"accelerometer": "g"}}),
                                    "raw.accel_magnitude_plausible"),
    "accelerometer declared in m/s^2": (lambda f: declare(f, {"units": {"accelerometer": "m/s^2"}}),
                                        "raw.accel_magnitude_plausible"),
    "rate declared 100 Hz": (lambda f: declare(f, {"declared_hz": {"accelerometer": 100}}),
                             "raw.native_rate_plausible"),
    "labels a day late": (shift_labels, "raw.labels_inside_recording"),
    "gyroscope stops half way": (stop_half_way, "fused.gap_loss_within_limit"),
    "NaN in a list cell": (nan_cell, "reader"),
    "a batch written twice": (repeat_batch, "reader"),
}


def check_broken(source: Path, work: Path, cfg: PreprocessConfig) -> list[list[str]]:
    rows = []
    for name, (breaker, expected) in BREAKS.items():
        copy = work / f"{source.name}-{len(rows)}"
        shutil.copytree(source, copy)
        copy.chmod(0o755)
        for f in copy.iterdir():
            f.chmod(0o644)
        breaker(copy)
        try:
            result = all_checks(copy, cfg)
            failed = [k for k, v in result.items() if k != "_detail" and not v]
            caught_by = ", ".join(failed) or "NOTHING"
        except (RawDataError, PipelineDataError) as exc:
            caught_by, failed = f"reader: {str(exc)[:90]}", ["reader"]
        rows.append([source.name, name, caught_by, "ok" if expected in failed else "MISSED"])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", type=Path, help="folder of participant folders (default: 6 demo participants)")
    parser.add_argument("--broken", type=int, default=2, help="how many participants to break copies of")
    args = parser.parse_args(argv)
    cfg = PreprocessConfig()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.raw
        if root is None:
            root = Path(tmp) / "demo"
            write_demo_dataset(root, 6, seed=0, minutes=4.0, fmt="csv")
        people = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        results = {p.name: all_checks(p, cfg) for p in people}
        names = [k for k in next(iter(results.values())) if k != "_detail"]
        print(f"checks on {len(people)} participants of {root} (default config): passed / participants")
        bad = 0
        for name in names:
            failing = [p for p, r in results.items() if not r[name]]
            bad += bool(failing)
            print(f"  {name:<36} {len(people) - len(failing):>3} / {len(people)}"
                  + (f"   FAILS ON {', '.join(failing)}: " + "; ".join(results[p]["_detail"] for p in failing[:2])
                     if failing else ""))
        print("\nbroken copies: what caught them")
        rows = [r for p in people[:args.broken] for r in check_broken(p, Path(tmp), cfg)]
        for participant, name, caught, verdict in rows:
            print(f"  {participant:<6} {name:<34} {verdict:<7} {caught}")
        missed = sum(r[3] != "ok" for r in rows)
    print(f"\n{bad} check(s) failing on good participants, {missed} broken cop(ies) missed")
    return 1 if bad or missed else 0


if __name__ == "__main__":
    sys.exit(main())
