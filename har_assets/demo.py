"""Synthetic participants in the raw watch-export format (the platform's embedded demo data).

Pure numpy/polars/xlsxwriter, no Dagster. Each participant performs bouts of the 11 seed
activities; the generator models the forearm physically on a uniform 200 Hz "true time" grid:

* posture: yaw/pitch/roll of the forearm per bout (class posture + per-person and per-bout
  offsets), smoothed into ~1.5 s transitions; gravity follows it, and the wrist (25 cm from the
  elbow) moves with it;
* class motion: oscillating rotations and wrist displacements (circles, taps, pulls, bursts of
  band-limited noise) on a phase with a wandering tempo and amplitude, plus impulses (taps
  hitting the table, knuckles cracking);
* accelerometer = specific force R^T (a + g) in milli-g; gyroscope = body angular velocity from
  the Euler-angle rates in deg/s; both turned by the same per-person watch rotation, then biased,
  drifting and noisy.

Each sensor then samples this signal on its own clock (own start offset, rate error, per-sample
jitter, integer-millisecond times), in batches of 25 samples, with gaps where the watch was off.
Per-person amplitude, tempo, posture and watch orientation vary so a model must generalise
across people; confusable classes (the three rubbings, sitting vs standing vs tapping, smoking vs
nail biting) differ only in posture angles or subtle motion. As on real people, posture is where
gravity points: the still classes share one kind of sway and differ in forearm posture alone,
and the watch sits on each wrist only a little turned (about 10 degrees), so a model that keeps
gravity can read posture across people and one that removes it cannot.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from scipy.ndimage import uniform_filter1d
from scipy.signal import butter, sosfilt

from har_assets.progress import Progress, Silent

ACTIVITIES: tuple[str, ...] = (
    "ear_rubbing", "forehead_rubbing", "hair_pulling", "hand_scratching", "hand_tapping", "knuckles_cracking",
    "nail_biting", "nape_rubbing", "sitting", "smoking", "standing",
)

GRID_HZ = 200.0  # rate of the internal "true" signal the sensors sample
CHUNK = 60_000  # grid samples per step of the physics (5 min): bounds memory for long sessions
G = 9.80665  # m/s² per g
FOREARM_M = 0.25  # elbow to watch: the lever that turns posture changes into wrist acceleration
BATCH = 25  # samples per row, as a Garmin writes them
XLSX_MAX_ROWS = 1_048_576  # rows of one worksheet, header included: ~72.8 h of 25-sample batches at 100 Hz
NOMINAL_HZ = 100.0
BOUT_S = (20.0, 60.0)
PAUSE_S = (2.0, 5.0)
GAP_S = (5.0, 60.0)
WATCH_FORMAT = "%m/%d/%Y, %I:%M:%S %p"
ACC_COLUMNS = ("calibrated_accel_x", "calibrated_accel_y", "calibrated_accel_z")
GYRO_COLUMNS = ("calibrated_gyro_x", "calibrated_gyro_y", "calibrated_gyro_z")
TimestampStyle = Literal["watch", "iso", "unix"]
SegmentKind = Literal["bout", "pause", "gap"]


@dataclass(frozen=True)
class _Spec:
    """How one activity looks: forearm posture (deg), movement style, frequency and amplitudes.

    Amplitudes: `rot_*` in degrees about the watch's x (roll), y (pitch), z (yaw) axes; `d_*` wrist
    displacement in mm along the watch's x (along the forearm), y, z (out of the face); `_a` on
    sin(phase), `_b` on cos(phase) (a circle when both are set).
    """

    pitch: float  # forearm elevation: + hand above elbow
    roll: float  # rotation about the forearm: 0 = watch face up
    style: Literal["osc", "tap", "pull", "crack", "irregular", "still", "smoke"]
    freq: tuple[float, float] = (1.0, 1.0)
    rot_a: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rot_b: tuple[float, float, float] = (0.0, 0.0, 0.0)
    d_a: tuple[float, float, float] = (0.0, 0.0, 0.0)
    d_b: tuple[float, float, float] = (0.0, 0.0, 0.0)
    h2: float = 0.0  # second-harmonic share (non-sinusoidal strokes)
    impact: float = 0.0  # mg of an impulse (tap on the table, knuckle crack)
    sway: float = 0.0  # mm of slow body sway
    low: tuple[float, float] = (0.0, 0.0)  # smoking: (pitch, roll) of the lowered arm


SPECS: dict[str, _Spec] = {
    # Hand-to-head rubbings: same kind of 1.5-3 Hz strokes, told apart mainly by the forearm angles.
    "ear_rubbing": _Spec(52, 68, "osc", (1.6, 2.8), rot_a=(4, 0, 3), rot_b=(0, 3, 0), d_a=(4, 12, 0),
                         d_b=(9, 0, 3), h2=0.15),
    "forehead_rubbing": _Spec(60, 42, "osc", (1.5, 2.6), rot_a=(3, 0, 5), rot_b=(0, 2, 0), d_a=(2, 15, 3),
                              d_b=(6, 0, 0), h2=0.2),
    "nape_rubbing": _Spec(68, 95, "osc", (1.4, 2.5), rot_a=(2, 4, 0), rot_b=(0, 0, 3), d_a=(12, 4, 0),
                          d_b=(0, 8, 3), h2=0.15),
    "hair_pulling": _Spec(72, 58, "pull", (0.35, 0.8), rot_a=(10, 6, 4), d_a=(30, 5, 8)),
    "hand_scratching": _Spec(5, 30, "osc", (3.0, 5.0), rot_a=(1.5, 5, 1), d_a=(8, 2, 3), h2=0.35),
    "hand_tapping": _Spec(-6, 8, "tap", (4.0, 6.0), rot_a=(0, 3, 0), d_a=(0, 0, 4), impact=180),
    "knuckles_cracking": _Spec(15, 75, "crack", (0.3, 1.2), rot_a=(3, 3, 2), d_a=(4, 4, 4), impact=450),
    "nail_biting": _Spec(55, 22, "irregular", (1.5, 5.0), rot_a=(2, 1.5, 2), d_a=(2, 2, 3)),
    "sitting": _Spec(-10, 12, "still", sway=2.5),
    "smoking": _Spec(58, 26, "smoke", (2.0, 5.0), rot_a=(2, 1.5, 2), d_a=(1.5, 1.5, 2), low=(-4, 15)),
    "standing": _Spec(-75, 80, "still", sway=2.5),
}
assert set(SPECS) == set(ACTIVITIES)


@dataclass(frozen=True)
class _Person:
    """Everything that makes one participant (and their watch) different from another."""

    amp: float
    tempo: float
    manner: dict[str, tuple[float, float]]  # per-class (amplitude, tempo) factors: everyone moves their own way
    watch: np.ndarray  # 3x3 rotation of the watch on the wrist, applied to both sensors
    posture: dict[str, tuple[float, float]]  # per-class (pitch, roll) in degrees
    acc_bias: np.ndarray  # mg
    gyro_bias: np.ndarray  # deg/s
    acc_noise: float
    gyro_noise: float
    tremor_mm: float
    jitter_ms: float
    acc_period_ms: float
    gyro_period_ms: float


@dataclass
class _Segment:
    start: float  # seconds since the recording start
    end: float
    kind: SegmentKind
    activity: str | None = None
    pitch: float = 0.0
    roll: float = 0.0
    yaw: float = 0.0


@dataclass
class _SensorSpan:
    start: float  # seconds
    end: float


@dataclass
class _Samples:
    """One sensor's samples: epoch ms (int64, strictly increasing), batch number, (3, n) values."""

    ms: np.ndarray
    batch: np.ndarray
    values: np.ndarray


@dataclass
class _Recording:
    t0_ms: int
    acc: _Samples
    gyro: _Samples
    labels: pl.DataFrame


@dataclass
class _Session:
    start: float
    end: float
    segments: list[_Segment] = field(default_factory=list)
    spans: dict[str, _SensorSpan] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- public API


def participant_id(index: int) -> str:
    """Id of the participant with 0-based `index`: 'p001', 'p002', ..."""
    return f"p{index + 1:03d}"


def write_demo_dataset(out_dir: Path, participants: int, *, seed: int = 0, minutes: float = 6.0,
                       fmt: Literal["xlsx", "csv"] = "xlsx", unlabeled: int = 0,
                       progress: Progress | None = None) -> list[str]:
    """Write participants p001..pNNN under `out_dir/<id>/` and return their ids.

    Each participant records `minutes` of activity bouts and pauses with the watch on, plus at
    least one 5-60 s gap with the watch off (about one per 40 min). The last `unlabeled`
    participants get no labels.csv; with 3 or more participants the third one declares its
    accelerometer in g (participant.json). Never overwrites: if any target folder exists,
    raises FileExistsError naming it before writing anything.
    """
    if participants < 0 or not 0 <= unlabeled <= participants:
        raise ValueError(f"need participants >= 0 and 0 <= unlabeled <= participants, got {participants}, {unlabeled}")
    out_dir = Path(out_dir)
    ids = [participant_id(i) for i in range(participants)]
    for pid in ids:
        if (out_dir / pid).exists():
            raise FileExistsError(f"participant folder {out_dir / pid} already exists; not overwriting it")
    out_dir.mkdir(parents=True, exist_ok=True)
    progress = progress or Silent()
    progress.stage("writing demo participants", participants)
    for i, pid in enumerate(ids):
        write_demo_participant(out_dir / pid, i, seed=seed, minutes=minutes, fmt=fmt,
                               labeled=i < participants - unlabeled, accel_unit="g" if i == 2 else "milli-g")
        progress.step(pid)
    return ids


def write_demo_participant(folder: Path, participant_index: int, *, seed: int, minutes: float, fmt: str,
                           labeled: bool = True, accel_unit: Literal["milli-g", "g"] = "milli-g") -> None:
    """Write one synthetic participant (0-based `participant_index`) into the new folder `folder`.

    The files are written into a hidden sibling folder and renamed into place at the end, so a
    folder watcher never sees a half-written participant. CSV timestamps rotate through the
    watch, ISO and Unix-seconds styles by participant index; XLSX always uses the watch style.
    """
    if fmt not in ("xlsx", "csv"):
        raise ValueError(f"fmt must be 'xlsx' or 'csv', got {fmt!r}")
    if minutes < 0.5:
        raise ValueError(f"minutes must be at least 0.5, got {minutes}")
    if seed < 0 or participant_index < 0:
        raise ValueError("seed and participant_index must be non-negative")
    if accel_unit not in ("milli-g", "g"):
        raise ValueError(f"accel_unit must be 'milli-g' or 'g', got {accel_unit!r}")
    folder = Path(folder)
    if folder.exists():
        raise FileExistsError(f"participant folder {folder} already exists; not overwriting it")
    style: TimestampStyle = "watch" if fmt == "xlsx" else ("watch", "iso", "unix")[participant_index % 3]
    rec = _generate(participant_index, seed=seed, minutes=minutes)

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)  # left over by an interrupted run of this generator
    tmp.mkdir()
    try:
        if accel_unit == "g":
            rec.acc.values /= 1000.0
            (tmp / "participant.json").write_text(json.dumps({"units": {"accelerometer": "g"}}, indent=2) + "\n")
        created = datetime.fromtimestamp(rec.t0_ms / 1000.0, tz=UTC).replace(tzinfo=None, microsecond=0)
        # accelerometer: `[0, 10]` lists, 0.1 mg (or 0.0001 g); gyroscope: JSON-string lists, 0.01 deg/s
        for name, samples, columns, decimals, json_lists in (
            ("accelerometer", rec.acc, ACC_COLUMNS, 4 if accel_unit == "g" else 1, False),
            ("gyroscope", rec.gyro, GYRO_COLUMNS, 2, True),
        ):
            table = _batch_table(samples, columns, decimals=decimals, json_lists=json_lists, style=style)
            if fmt == "csv":
                table.write_csv(tmp / f"{name}.csv")
            else:
                _write_xlsx(table, tmp / f"{name}.xlsx", created)
            del table
        if labeled:
            rec.labels.write_csv(tmp / "labels.csv")
        if folder.exists():
            raise FileExistsError(f"participant folder {folder} already exists; not overwriting it")
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --------------------------------------------------------------------------------------------- timeline


def _dataset_order(seed: int) -> np.ndarray:
    """A dataset-wide class permutation: participant j starts with the next n classes of it (cyclically)."""
    return np.random.default_rng([seed, 0]).permutation(len(ACTIVITIES))


def _bout_count(minutes: float) -> int:
    """Bouts per participant: depends on `minutes` only, so the dataset-wide class rotation lines up."""
    return max(1, round(minutes * 60.0 / 44.0))


def _class_sequence(rng: np.random.Generator, seed: int, index: int, n: int) -> list[str]:
    """Random order in rounds of all 11 classes (balanced); the first round's first classes rotate
    through a dataset-wide permutation, so even short participants together cover every class."""
    k = len(ACTIVITIES)
    order = _dataset_order(seed)
    first = [int(order[(index * n + i) % k]) for i in range(min(n, k))]
    rest = [c for c in range(k) if c not in first]
    seq = list(rng.permutation(first)) + list(rng.permutation(rest))
    while len(seq) < n:
        nxt = list(rng.permutation(k))
        if nxt[0] == seq[-1]:
            nxt[0], nxt[-1] = nxt[-1], nxt[0]
        seq += nxt
    return [ACTIVITIES[c] for c in seq[:n]]


def _fit_durations(raw: np.ndarray, total: float, lo: float, hi: float) -> np.ndarray:
    """Scale `raw` so that, clipped to [lo, hi], it sums to `total` (bisection on the scale)."""
    lo, hi = min(lo, total / raw.size), max(hi, total / raw.size)
    a, b = 0.0, hi / raw.min() + 1.0
    for _ in range(80):
        f = 0.5 * (a + b)
        if np.clip(raw * f, lo, hi).sum() < total:
            a = f
        else:
            b = f
    return np.clip(raw * 0.5 * (a + b), lo, hi)


def _timeline(rng: np.random.Generator, person: _Person, seed: int, index: int, minutes: float) -> list[_Segment]:
    """Bouts, pauses and gaps; `minutes` of watch-on time, gaps come on top."""
    n = _bout_count(minutes)
    activities = _class_sequence(rng, seed, index, n)
    # the watch is off about every 40 min (at least once): one gap at a random bout boundary per stretch
    n_gaps = min(max(1, round(minutes / 40.0 + rng.uniform(-0.5, 0.5))), max(1, n - 1))
    edges = np.linspace(0, n - 1, n_gaps + 1).astype(int)
    gap_after = {0} if n == 1 else {int(rng.integers(lo, hi)) for lo, hi in pairwise(edges)}
    lead, trail = rng.uniform(1.5, 4.0, 2)
    after: list[list[tuple[SegmentKind, float]]] = []  # what follows each bout
    for i in range(n):
        if i in gap_after:
            after.append([("pause", rng.uniform(*PAUSE_S)), ("gap", rng.uniform(*GAP_S)),
                          ("pause", rng.uniform(*PAUSE_S))])
        elif i < n - 1 and rng.random() < 0.6:
            after.append([("pause", rng.uniform(*PAUSE_S))])
        else:
            after.append([])
    pauses = lead + trail + sum(d for items in after for kind, d in items if kind == "pause")
    durations = _fit_durations(rng.uniform(*BOUT_S, n), max(minutes * 60.0 - pauses, 5.0 * n), *BOUT_S)

    segments = [_Segment(0.0, lead, "pause", pitch=rng.uniform(-30, 5), roll=rng.uniform(-10, 40))]
    t = lead
    for activity, duration, items in zip(activities, durations, after, strict=True):
        pitch, roll = person.posture[activity]
        segments.append(_Segment(t, t + duration, "bout", activity, pitch + rng.normal(0, 6), roll + rng.normal(0, 6),
                                 rng.normal(0, 25)))
        t += duration
        for kind, d in items:
            segments.append(_Segment(t, t + d, kind, pitch=rng.uniform(-30, 5), roll=rng.uniform(-10, 40),
                                     yaw=rng.normal(0, 25)))
            t += d
    segments.append(_Segment(t, t + trail, "pause", pitch=rng.uniform(-30, 5), roll=rng.uniform(-10, 40)))
    return segments


def _sessions(rng: np.random.Generator, segments: list[_Segment]) -> list[_Session]:
    """Split at gaps; give each sensor its own start/stop around each session (and one longer dropout)."""
    sessions: list[_Session] = []
    current: list[_Segment] = []
    for seg in [*segments, _Segment(0, 0, "gap")]:
        if seg.kind == "gap":
            if current:
                sessions.append(_Session(current[0].start, current[-1].end, current))
            current = []
        else:
            current.append(seg)
    for s in sessions:
        acc = _SensorSpan(s.start + rng.uniform(0.0, 0.06), s.end - rng.uniform(0.0, 0.06))
        gyro = _SensorSpan(s.start + rng.uniform(-0.06, 0.09), s.end + rng.uniform(-0.08, 0.06))
        s.spans = {"acc": acc, "gyro": gyro}
    # one sensor drops out a moment longer around one gap (inside the >= 2 s pause next to it)
    k = int(rng.integers(len(sessions) - 1))
    sensor = "acc" if rng.random() < 0.5 else "gyro"
    extra = rng.uniform(0.3, 1.2)
    if rng.random() < 0.5:
        sessions[k].spans[sensor].end -= extra
    else:
        sessions[k + 1].spans[sensor].start += extra
    return sessions


# --------------------------------------------------------------------------------------------- signal model


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """3x3 rotation by `angle` (rad) about `axis` (Rodrigues)."""
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def _person(rng: np.random.Generator) -> _Person:
    posture = {a: (SPECS[a].pitch + rng.normal(0, 9), SPECS[a].roll + rng.normal(0, 12)) for a in ACTIVITIES}
    posture["smoking_low"] = (SPECS["smoking"].low[0] + rng.normal(0, 9), SPECS["smoking"].low[1] + rng.normal(0, 12))
    return _Person(
        amp=rng.uniform(0.6, 1.4),
        tempo=rng.uniform(0.75, 1.3),
        manner={a: (rng.uniform(0.75, 1.3), rng.uniform(0.9, 1.1)) for a in ACTIVITIES},
        # the band sits a little turned about the forearm, the face a little tilted: gravity's direction in the
        # watch frame still says how the forearm is held, as it does for a real watch (or a phone on a belt)
        watch=_rotation(np.array([1.0, 0.0, 0.0]), np.deg2rad(rng.normal(0, 10)))
        @ _rotation(rng.normal(size=3), np.deg2rad(rng.uniform(0, 8))),
        posture=posture,
        acc_bias=rng.normal(0, 15, 3),
        gyro_bias=rng.normal(0, 1.0, 3),
        acc_noise=rng.uniform(3.0, 8.0),
        gyro_noise=rng.uniform(0.1, 0.3),
        tremor_mm=rng.uniform(0.015, 0.04),
        jitter_ms=rng.uniform(1.0, 2.0),
        acc_period_ms=1000.0 / NOMINAL_HZ * (1 + rng.uniform(-0.002, 0.002)),
        gyro_period_ms=1000.0 / NOMINAL_HZ * (1 + rng.uniform(-0.005, 0.005)),
    )


def _filtered_noise(rng: np.random.Generator, n: int, lo: float | None, hi: float, order: int = 4) -> np.ndarray:
    """Unit-variance Gaussian noise, band-passed to [lo, hi] Hz (low-passed if lo is None).

    Steep (4th order) so that twice differentiated displacements stay in band.
    """
    if lo is None:
        sos = butter(order, hi, btype="low", fs=GRID_HZ, output="sos")
    else:
        sos = butter(order, [lo, min(hi, 0.45 * GRID_HZ)], btype="band", fs=GRID_HZ, output="sos")
    warm = int(4 * GRID_HZ / (lo or hi))  # let the filter settle before the kept part
    x = sosfilt(sos, rng.normal(size=n + warm))[warm:]
    sd = x.std()
    return x / sd if sd > 0 else x


def _impulses(n: int, where: np.ndarray, size: np.ndarray, tau_s: float, hz: float) -> np.ndarray:
    """A train of decaying oscillations (length n) starting at grid indices `where` with amplitudes `size`."""
    train = np.zeros(n)
    np.add.at(train, where, size)
    t = np.arange(int(5 * tau_s * GRID_HZ) + 1) / GRID_HZ
    kernel = np.exp(-t / tau_s) * np.cos(2 * np.pi * hz * t)
    return np.convolve(train, kernel)[:n]


def _bout_motion(rng: np.random.Generator, person: _Person, seg: _Segment, n: int, rot: np.ndarray, d: np.ndarray,
                 acc_imp: np.ndarray, gyro_imp: np.ndarray, target: np.ndarray) -> None:
    """Add one bout's movement to the (3, n) slices: rotations (deg), wrist displacement (mm),
    direct acceleration impulses (mg), direct rate impulses (deg/s); smoking also edits the posture target."""
    spec = SPECS[seg.activity or ""]
    manner_amp, manner_tempo = person.manner[seg.activity or ""]
    amp = float(np.clip(person.amp * manner_amp * rng.uniform(0.85, 1.15), 0.45, 1.8))
    tempo = person.tempo * manner_tempo
    f0 = rng.uniform(*spec.freq) * tempo
    t = np.arange(n) / GRID_HZ
    fade = np.clip(np.minimum(t, t[-1] - t) / 0.4, 0.0, 1.0) if n > 1 else np.ones(n)
    rest = np.zeros(n)  # the movement stops for 1-3 s now and then, still inside the labelled bout
    for start in rng.integers(0, n, rng.poisson(n / GRID_HZ / 25.0)):
        rest[start:start + int(rng.uniform(1.0, 3.0) * GRID_HZ)] = 0.9
    rest = uniform_filter1d(rest, int(0.3 * GRID_HZ), mode="nearest")
    envelope = fade * (1.0 - rest) * np.clip(1.0 + 0.2 * _filtered_noise(rng, n, None, 0.3), 0.3, None) * amp
    freq = f0 * (1.0 + 0.08 * _filtered_noise(rng, n, None, 0.2))
    phase = 2 * np.pi * np.cumsum(freq) / GRID_HZ + rng.uniform(0, 2 * np.pi)
    ra, rb, da, db = (np.asarray(v, dtype=float)[:, None] for v in (spec.rot_a, spec.rot_b, spec.d_a, spec.d_b))

    if spec.style == "osc":
        s = np.sin(phase) + spec.h2 * np.sin(2 * phase + 0.7)
        c = np.cos(phase)
        rot += envelope * (ra * s + rb * c)
        d += envelope * (da * s + db * c)
    elif spec.style == "tap":
        w = ((1 - np.cos(phase)) / 2) ** 1.5  # lift and drop; 0 = finger on the table
        rot += envelope * ra * w
        d += envelope * da * w
        hits = np.flatnonzero(np.diff(np.floor(phase / (2 * np.pi))) > 0) + 1
        size = spec.impact * amp * rng.uniform(0.6, 1.3, hits.size) * fade[hits]
        acc_imp[2] += _impulses(n, hits, size, 0.012, 30.0)
        acc_imp[0] += _impulses(n, hits, 0.3 * size * rng.normal(size=hits.size), 0.012, 30.0)
        gyro_imp[1] += _impulses(n, hits, 0.05 * size, 0.015, 20.0)
    elif spec.style == "pull":
        w = np.sin(phase) + 0.35 * np.sin(2 * phase) + 0.15 * np.sin(3 * phase)  # slow pull, quick release
        rot += envelope * ra * w
        d += envelope * da * w
    elif spec.style == "crack":
        slow = np.stack([_filtered_noise(rng, n, 0.2 * tempo, 1.5 * tempo) for _ in range(3)])
        rot += envelope * ra * slow
        d += envelope * da * slow[::-1]
        rate = rng.uniform(0.3, 0.8) * tempo
        hits = np.sort(rng.choice(np.arange(n), size=min(n, rng.poisson(rate * n / GRID_HZ)), replace=False))
        hits = hits[fade[hits] > 0.5]
        direction = rng.normal(size=(3, hits.size)) * np.array([[0.5], [1.0], [0.6]])
        direction /= np.linalg.norm(direction, axis=0, keepdims=True) + 1e-12
        size = spec.impact * amp * rng.uniform(0.5, 2.0, hits.size)
        spin = rng.normal(size=(3, hits.size)) * 40.0 * amp
        for axis in range(3):
            acc_imp[axis] += _impulses(n, hits, size * direction[axis], 0.015, 35.0)
            gyro_imp[axis] += _impulses(n, hits, spin[axis], 0.02, 15.0)
    elif spec.style in ("irregular", "smoke"):
        lo, hi = spec.freq[0] * tempo, spec.freq[1] * tempo
        bursts = 1.0 / (1.0 + np.exp(-3.0 * _filtered_noise(rng, n, None, 0.25)))  # on/off chewing
        noise = np.stack([_filtered_noise(rng, n, lo, hi) for _ in range(6)])
        rot += envelope * bursts * ra * noise[:3]
        d += envelope * bursts * da * noise[3:]
        if spec.style == "smoke":
            _smoking_posture(rng, person, n, target, rot)
    elif spec.style == "still":
        sway = fade * np.stack([_filtered_noise(rng, n, 0.1, 0.6) for _ in range(3)])
        d += spec.sway * person.amp * sway
        rot += 0.3 * spec.sway * person.amp * sway[::-1]
        n_fidgets = rng.poisson(n / GRID_HZ / 20.0)  # a small adjustment now and then
        for start in rng.integers(0, max(1, n - int(2 * GRID_HZ)), n_fidgets):
            m = min(n - start, int(rng.uniform(0.8, 2.0) * GRID_HZ))
            shape = np.sin(np.linspace(0, np.pi, m)) ** 2
            d[:, start:start + m] += rng.normal(0, 4, (3, 1)) * shape * _filtered_noise(rng, m, 0.5, 2.0)
            rot[:, start:start + m] += rng.normal(0, 3, (3, 1)) * shape


def _smoking_posture(rng: np.random.Generator, person: _Person, n: int, target: np.ndarray, rot: np.ndarray) -> None:
    """Alternate the arm between the mouth (2-4 s, puff) and the armrest (5-10 s, an occasional ash flick)."""
    raised = bool(rng.random() < 0.5)
    i = 0
    low_pitch, low_roll = person.posture["smoking_low"]
    while i < n:
        m = min(n - i, int((rng.uniform(2, 4) if raised else rng.uniform(5, 10)) * GRID_HZ))
        if not raised:
            target[1, i:i + m] = low_pitch
            target[2, i:i + m] = low_roll
            if rng.random() < 0.5 and m > GRID_HZ:  # flick: ~3 quick wrist turns
                j = i + int(rng.integers(0, m - int(GRID_HZ)))
                k = int(0.75 * GRID_HZ)
                tt = np.arange(k) / GRID_HZ
                flick = np.sin(2 * np.pi * 4 * person.tempo * tt) * np.sin(np.pi * tt / tt[-1])
                rot[0, j:j + k] += 8 * person.amp * flick
        i += m
        raised = not raised


def _euler_matrix(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """(3, 3, n) watch-to-world rotations Rz(yaw) Ry(-pitch) Rx(roll), angles in radians."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cb, sb = np.cos(-pitch), np.sin(-pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    return np.array([
        [cy * cb, cy * sb * sr - sy * cr, cy * sb * cr + sy * sr],
        [sy * cb, sy * sb * sr + cy * cr, sy * sb * cr - cy * sr],
        [-sb, cb * sr, cb * cr],
    ])


def _session_signal(rng: np.random.Generator, person: _Person, session: _Session) -> tuple[np.ndarray, np.ndarray,
                                                                                            np.ndarray]:
    """Grid times (s), specific force (3, n) in mg and angular rate (3, n) in deg/s, watch frame."""
    t0 = session.start - 0.5
    n = int((session.end + 0.5 - t0) * GRID_HZ) + 1
    t = t0 + np.arange(n) / GRID_HZ
    starts = np.array([s.start for s in session.segments])
    idx = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(starts) - 1)
    target = np.stack([np.array([getattr(s, a) for s in session.segments])[idx] for a in ("yaw", "pitch", "roll")])
    rot = np.zeros((3, n))
    d = np.zeros((3, n))
    acc_imp = np.zeros((3, n))
    gyro_imp = np.zeros((3, n))
    for seg in session.segments:
        if seg.kind != "bout":
            continue
        a, b = np.searchsorted(t, [seg.start, seg.end])
        sl = slice(a, b)
        _bout_motion(rng, person, seg, b - a, rot[:, sl], d[:, sl], acc_imp[:, sl], gyro_imp[:, sl], target[:, sl])

    # posture: ~1.6 s S-shaped transitions, slow wander; motion and tremor on top
    width = int(0.8 * GRID_HZ)
    posture = uniform_filter1d(uniform_filter1d(target, width, axis=1, mode="nearest"), width, axis=1, mode="nearest")
    del target
    posture += 1.5 * np.stack([_filtered_noise(rng, n, None, 0.15) for _ in range(3)])
    rot += 0.05 * np.stack([_filtered_noise(rng, n, 7.0, 12.0) for _ in range(3)])
    d += person.tremor_mm * np.stack([_filtered_noise(rng, n, 7.0, 12.0) for _ in range(3)])
    force, rate = acc_imp, gyro_imp  # the physics is added in place, chunk by chunk (bounded memory)
    for a in range(0, n, CHUNK):
        b = min(n, a + CHUNK)
        lo, hi = max(0, a - 4), min(n, b + 4)  # margin for the two central differences: results do not
        f, g = _physics(posture[:, lo:hi], rot[:, lo:hi], d[:, lo:hi])  # depend on the chunk size
        force[:, a:b] += f[:, a - lo:b - lo]
        rate[:, a:b] += g[:, a - lo:b - lo]
    return t, person.watch @ force, person.watch @ rate


def _physics(posture: np.ndarray, rot: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Specific force (mg) and body angular rate (deg/s) in the watch frame, from the posture
    (yaw, pitch, roll; deg), the oscillating rotation (about x, y, z; deg) and the wrist displacement (mm)."""
    dt = 1.0 / GRID_HZ
    slow = _euler_matrix(*np.deg2rad(posture))
    # wrist position in the world: forearm lever plus the displacement in the (slow) watch frame
    offset = d / 1000.0
    offset[0] += FOREARM_M
    p = np.einsum("ijn,jn->in", slow, offset)
    del slow
    a_world = np.gradient(np.gradient(p, dt, axis=1), dt, axis=1)
    a_world[2] += G
    yaw, pitch, roll = np.deg2rad(posture + rot[::-1])
    force = np.einsum("jin,jn->in", _euler_matrix(yaw, pitch, roll), a_world) * (1000.0 / G)
    # body rates of Rz(yaw) Ry(beta) Rx(roll), beta = -pitch
    beta = -pitch
    dyaw, dbeta, droll = (np.gradient(x, dt) for x in (yaw, beta, roll))
    rate = np.stack([
        droll - dyaw * np.sin(beta),
        dbeta * np.cos(roll) + dyaw * np.cos(beta) * np.sin(roll),
        -dbeta * np.sin(roll) + dyaw * np.cos(beta) * np.cos(roll),
    ])
    return force, np.rad2deg(rate)


def _sample_times(rng: np.random.Generator, span: _SensorSpan, period_ms: float, jitter_ms: float) -> np.ndarray:
    """True sample times (ms since the recording start) of one sensor over one session."""
    n = int((span.end - span.start) * 1000.0 / period_ms) + 1
    return span.start * 1000.0 + np.arange(n) * period_ms + rng.uniform(-jitter_ms, jitter_ms, n)


def _drift(rng: np.random.Generator, total_s: float, step_sd: float) -> tuple[np.ndarray, np.ndarray]:
    """A slow random walk per axis on a 1 Hz grid: (times in ms, (3, m) values)."""
    m = int(total_s) + 2
    walk = np.cumsum(rng.normal(0, step_sd, (3, m)), axis=1)
    return np.arange(m) * 1000.0, uniform_filter1d(walk, 30, axis=1, mode="nearest")


def _generate(index: int, *, seed: int, minutes: float) -> _Recording:
    """Both sensors' samples and the labels table of one participant."""
    rng = np.random.default_rng([seed, 1, index])
    person = _person(rng)
    segments = _timeline(rng, person, seed, index, minutes)
    sessions = _sessions(rng, segments)
    day = int(rng.integers(0, 360))
    t0_ms = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000) + day * 86_400_000 + int(
        rng.uniform(7.0, 18.0) * 3_600_000)
    total_s = segments[-1].end + 1.0
    drift = {"acc": _drift(rng, total_s, 0.3), "gyro": _drift(rng, total_s, 0.015)}
    bias = {"acc": person.acc_bias, "gyro": person.gyro_bias}
    noise = {"acc": person.acc_noise, "gyro": person.gyro_noise}
    period = {"acc": person.acc_period_ms, "gyro": person.gyro_period_ms}
    limit = {"acc": 8000.0, "gyro": 2000.0}  # sensor ranges: ±8 g, ±2000 deg/s
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"acc": [], "gyro": []}
    for session in sessions:
        grid_t, force, rate = _session_signal(rng, person, session)
        grid_ms = grid_t * 1000.0
        for sensor, signal in (("acc", force), ("gyro", rate)):
            true_ms = _sample_times(rng, session.spans[sensor], period[sensor], person.jitter_ms)
            values = np.stack([np.interp(true_ms, grid_ms, signal[k]) for k in range(3)])
            values += bias[sensor][:, None] + rng.normal(0, noise[sensor], values.shape)
            values += np.stack([np.interp(true_ms, drift[sensor][0], drift[sensor][1][k]) for k in range(3)])
            parts[sensor].append((np.round(true_ms).astype(np.int64), np.clip(values, -limit[sensor], limit[sensor])))
    samples = {}
    for sensor in ("acc", "gyro"):
        ms = np.concatenate([p[0] for p in parts[sensor]]) + t0_ms
        if np.any(np.diff(ms) <= 0):  # cannot happen with 10 ms periods and <= 2 ms jitter; never write it
            raise AssertionError(f"{sensor} sample times not strictly increasing")
        batches, first = [], 0  # batches of 25 restart at every session
        for p in parts[sensor]:
            batches.append(first + np.arange(p[0].size) // BATCH)
            first = int(batches[-1][-1]) + 1
        samples[sensor] = _Samples(ms, np.concatenate(batches), np.concatenate([p[1] for p in parts[sensor]], axis=1))
    bouts = [s for s in segments if s.kind == "bout"]
    labels = pl.DataFrame({
        "start": [t0_ms + round(s.start * 1000) for s in bouts],
        "end": [t0_ms + round(s.end * 1000) for s in bouts],
        "activity": [s.activity for s in bouts],
    }).with_columns(pl.from_epoch(c, time_unit="ms").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ") for c in ("start", "end"))
    return _Recording(t0_ms, samples["acc"], samples["gyro"], labels)


# --------------------------------------------------------------------------------------------- writing


def _number_strings(values: np.ndarray, decimals: int | None) -> pl.Series:
    if decimals is None:
        return pl.Series(values.astype(np.int64)).cast(pl.String)
    return pl.Series(np.round(values, decimals) + 0.0).cast(pl.String)  # + 0.0 turns -0.0 into 0.0


def _batch_table(samples: _Samples, columns: tuple[str, ...], *, decimals: int, json_lists: bool,
                 style: TimestampStyle) -> pl.DataFrame:
    """One row per batch: timestamp, timestamp_ms, then list cells written as text."""
    ms, batch = samples.ms, samples.batch
    first = np.flatnonzero(np.r_[True, np.diff(batch) != 0])
    start = ms[first]
    offsets = ms - np.repeat(start, np.diff(np.r_[first, ms.size]))
    # format ~4000 batches at a time: the per-sample strings of a long recording would take a lot of memory
    bounds = [*first[::4000], ms.size]
    lists = pl.concat([
        _list_cells(batch[a:b], {"sample_time_offset": offsets[a:b]},
                    {c: samples.values[k, a:b] for k, c in enumerate(columns)}, decimals, json_lists)
        for a, b in pairwise(bounds)
    ])
    seconds = start // 1000
    if style == "unix":
        stamp = pl.Series("timestamp", seconds)
    else:
        fmt = WATCH_FORMAT if style == "watch" else "%Y-%m-%d %H:%M:%S"
        stamp = pl.from_epoch(pl.Series("timestamp", seconds), time_unit="s").dt.strftime(fmt)
    return pl.DataFrame([stamp, pl.Series("timestamp_ms", start - seconds * 1000)]).hstack(lists)


def _list_cells(batch: np.ndarray, integers: dict[str, np.ndarray], floats: dict[str, np.ndarray], decimals: int,
                json_lists: bool) -> pl.DataFrame:
    """Join the samples of each batch into `[0, 10, 20]` (or `["0","10","20"]`) text cells, vectorised."""
    cells = {c: _number_strings(v, None) for c, v in integers.items()}
    cells.update({c: _number_strings(v, decimals) for c, v in floats.items()})
    if json_lists:
        items = [(pl.lit('"') + pl.col(c) + pl.lit('"')).str.join(",").alias(c) for c in cells]
    else:
        items = [pl.col(c).str.join(", ") for c in cells]
    return (
        pl.DataFrame({"batch": batch, **cells})
        .group_by("batch", maintain_order=True)
        .agg(items)
        .select((pl.lit("[") + pl.col(c) + pl.lit("]")).alias(c) for c in cells)
    )


def _write_xlsx(table: pl.DataFrame, path: Path, created: datetime) -> None:
    """One sheet, header + one row per batch; list cells as (inline) strings, streamed row by row."""
    import xlsxwriter

    if table.height + 1 > XLSX_MAX_ROWS:  # xlsxwriter would leave out the rest without a word
        raise ValueError(f"{path.name}: {table.height:,} batches do not fit one worksheet ({XLSX_MAX_ROWS - 1:,} "
                         "rows after the header); write a recording this long as CSV")
    options = {"constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False,
               "strings_to_urls": False}
    with xlsxwriter.Workbook(str(path), options) as book:
        book.set_properties({"created": created})  # fixed, so identical inputs give identical files
        sheet = book.add_worksheet("Sheet1")
        sheet.write_row(0, 0, table.columns)
        write_string, write_number = sheet.write_string, sheet.write_number
        number_columns = [table[c].dtype.is_numeric() for c in table.columns]
        for r, row in enumerate(table.iter_rows(), start=1):  # typed writes skip xlsxwriter's type sniffing
            for c, (value, is_number) in enumerate(zip(row, number_columns, strict=True)):
                (write_number if is_number else write_string)(r, c, value)
