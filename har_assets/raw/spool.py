"""One sensor's samples kept on disk, in time order, and read back by row range: what lets a recording of any
length be processed a piece at a time. Written in one pass over a streamed file, which also measures what a
whole-recording pass needs up front: the gap-free runs and the median sample interval."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ITEM = np.dtype(np.float64).itemsize


@dataclass
class SampleSpool:
    """Samples t_ms (strictly increasing) and xyz of one sensor in two files under `folder`."""

    folder: Path
    max_gap_ms: float  # a longer interval ends a gap-free run
    rows: int = 0
    block_rows: list[int] = field(default_factory=list)  # first row of each written block
    block_times: list[float] = field(default_factory=list)  # time of each block's first sample
    run_starts: list[int] = field(default_factory=list)  # rows after a gap longer than max_gap_ms
    gap_steps: list[float] = field(default_factory=list)  # the interval (ms) of each such gap, in order
    intervals: Counter[float] = field(default_factory=Counter)  # every sample interval (ms) and how often

    @classmethod
    def write(cls, folder: Path, blocks: Iterable[tuple[np.ndarray, np.ndarray]], max_gap_ms: float) -> SampleSpool:
        """Spool (t_ms, xyz) blocks, which must follow each other in time."""
        folder.mkdir(parents=True, exist_ok=True)
        spool = cls(folder, max_gap_ms)
        last = None
        with open(spool._t_path, "wb") as t_file, open(spool._xyz_path, "wb") as xyz_file:
            for t_ms, xyz in blocks:
                if t_ms.size == 0:
                    continue
                steps = np.diff(t_ms) if last is None else np.diff(t_ms, prepend=last)
                gaps = np.flatnonzero(steps > max_gap_ms)
                first = spool.rows - (0 if last is None else 1)  # the row each step leads from
                spool.run_starts.extend((first + gaps + 1).tolist())
                spool.gap_steps.extend(steps[gaps].tolist())
                values, counts = np.unique(steps, return_counts=True)
                spool.intervals.update(dict(zip(values.tolist(), counts.tolist(), strict=True)))
                spool.block_rows.append(spool.rows)
                spool.block_times.append(float(t_ms[0]))
                np.ascontiguousarray(t_ms, dtype=np.float64).tofile(t_file)
                np.ascontiguousarray(xyz, dtype=np.float64).tofile(xyz_file)
                spool.rows += t_ms.size
                last = t_ms[-1]
        return spool

    @property
    def _t_path(self) -> Path:
        return self.folder / "t_ms.f64"

    @property
    def _xyz_path(self) -> Path:
        return self.folder / "xyz.f64"

    def times(self, lo: int, hi: int) -> np.ndarray:
        """t_ms of rows [lo, hi)."""
        return np.fromfile(self._t_path, dtype=np.float64, count=max(0, hi - lo), offset=lo * ITEM)

    def read(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(t_ms, xyz) of rows [lo, hi)."""
        xyz = np.fromfile(self._xyz_path, dtype=np.float64, count=3 * max(0, hi - lo), offset=3 * lo * ITEM)
        return self.times(lo, hi), xyz.reshape(-1, 3)

    def search(self, t: float, side: str = "left") -> int:
        """`np.searchsorted(all times, t, side)`, reading one block."""
        block = int(np.searchsorted(self.block_times, t, side)) - 1
        if block < 0:
            return 0
        lo = self.block_rows[block]
        hi = self.block_rows[block + 1] if block + 1 < len(self.block_rows) else self.rows
        return lo + int(np.searchsorted(self.times(lo, hi), t, side))  # type: ignore[call-overload]

    def run_bounds(self) -> np.ndarray:
        """Row indices where gap-free runs start, plus the end: `gap_bounds` of all times."""
        return np.array([0, *self.run_starts, self.rows], dtype=np.int64) if self.rows else np.array([0, 0])

    def run_spans(self) -> np.ndarray:
        """(k, 2) [first, last] sample time of each gap-free run: `continuous_spans` of all times."""
        bounds = self.run_bounds()
        if not self.rows:
            return np.empty((0, 2))
        firsts = [float(self.times(b, b + 1)[0]) for b in bounds[:-1]]
        lasts = [float(self.times(b - 1, b)[0]) for b in bounds[1:]]
        return np.column_stack((firsts, lasts))

    def median_interval(self) -> float:
        """`np.median(np.diff(all times))`, exactly (NaN for fewer than two samples)."""
        total = self.rows - 1
        if total < 1:
            return float("nan")
        values = np.array(sorted(self.intervals))
        ends = np.cumsum([self.intervals[v] for v in values])
        at = values[np.searchsorted(ends, [(total - 1) // 2, total // 2], side="right")]
        return float(at[0]) if total % 2 else float((at[0] + at[1]) / 2)
