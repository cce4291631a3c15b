"""Per-participant preprocessing assets: raw_recording → fused_recording → filtered_recording → windows.

Thin shells over har_assets.raw and har_assets.signal: they read config from resources, call
the pure functions, and report metadata and asset checks for the Dagster UI. Each step covers
one participant (sensor runs, "Materialize" of a partition) or a batch of them (backfills): see
participant_batches for what a batch keeps per participant.
"""


from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import polars as pl

from har_assets.config import GravityMode, PreprocessConfig
from har_assets.errors import PipelineDataError, RawDataError
from har_assets.orchestration.asset_store import RECORDING_IO, TABLE_IO, WINDOWS_IO
from har_assets.orchestration.check_gate import partitioned_specs
from har_assets.orchestration.participant_batches import (
    OneOrBatch,
    StageResult,
    by_participant,
    participant_asset,
    run_stage,
)
from har_assets.orchestration.resources import PreprocessingResource, RawStore
from har_assets.orchestration.tables import frame_table, tabular_metadata
from har_assets.plots.png import png_markdown
from har_assets.plots.recording import recording_png
from har_assets.raw.layout import ParticipantFolderError, locate_files
from har_assets.raw.reader import read_files
from har_assets.raw.recording import RawRecording
from har_assets.signal import checks
from har_assets.signal.fusion import measured_hz
from har_assets.signal.gravity import apply_gravity_handling
from har_assets.signal.pipeline import fuse_recording, window_recording

GROUP = "preprocessing"


@contextmanager
def failing_clearly(participant: str) -> Iterator[None]:
    """Turn data errors into a Dagster Failure whose description names participant, file and problem."""
    try:
        yield
    except RawDataError as exc:
        meta = {"participant": participant, "file": exc.file, "problem": exc.problem}
        meta |= {k: v for k, v in (("field", exc.field), ("row", exc.row)) if v is not None}
        raise dg.Failure(description=str(exc), metadata=meta, allow_retries=False) from exc
    except (ParticipantFolderError, PipelineDataError) as exc:
        raise dg.Failure(description=str(exc), metadata={"participant": participant}, allow_retries=False) from exc


Events = Iterator[dg.Output | dg.AssetCheckResult | dg.AssetCheckEvaluation]


@participant_asset(
    group_name=GROUP, io_manager_key=RECORDING_IO, code_version="raw-2", kinds={"polars"},
    check_specs=partitioned_specs("raw_recording", checks.RAW_CHECKS),
    description="Both sensors of one participant read from its raw folder, in SI units, with labels. "
                "Its data version (in a run of one participant) and its raw_fingerprint are the content hash "
                "of the participant's files.",
)
def raw_recording(context: dg.AssetExecutionContext, raw_store: RawStore,
                  preprocessing: PreprocessingResource) -> Events:
    cfg = preprocessing.to_config()

    def one(pid: str, _: None) -> StageResult:
        with failing_clearly(pid):
            rec = read_files(locate_files(raw_store.folder(pid)), cfg, raw_store.limits())
        return StageResult(rec, raw_metadata(rec, cfg), checks.raw_checks(rec, cfg), data_version=rec.fingerprint())

    yield from run_stage(context, dict.fromkeys(context.partition_keys), one)


def recording_plot(frame: pl.DataFrame, title: str) -> dict[str, dg.MetadataValue | int]:
    """The recording's picture (every channel, labels, gaps, segments) and its size, for the asset's page."""
    png = recording_png(frame, title)
    return {"plot": dg.MetadataValue.md(png_markdown(png, title)), "plot_bytes": len(png)}


def raw_metadata(rec: RawRecording, cfg: PreprocessConfig) -> dict:
    meta = rec.meta
    return {
        "raw_fingerprint": rec.fingerprint(),
        "accelerometer_samples": rec.accel.height,
        "gyroscope_samples": rec.gyro.height,
        "accelerometer_native_hz": round(measured_hz(rec.accel["t_ms"].to_numpy()), 2),
        "gyroscope_native_hz": round(measured_hz(rec.gyro["t_ms"].to_numpy()), 2),
        "accelerometer_unit": meta.accel_unit(cfg).value,
        "gyroscope_unit": meta.gyro_unit(cfg).value,
        "label_intervals": rec.labels.height,
        "activities": sorted(set(rec.labels["activity"].to_list())),
        "duration_s": round((max(rec.accel["t_ms"][-1], rec.gyro["t_ms"][-1])
                             - min(rec.accel["t_ms"][0], rec.gyro["t_ms"][0])) / 1000.0, 2),
        "files": dg.MetadataValue.json(rec.sources),
    }


@participant_asset(
    group_name=GROUP, io_manager_key=TABLE_IO, code_version="fused-3", kinds={"polars"},
    check_specs=partitioned_specs("fused_recording", checks.FUSED_CHECKS),
    description="Accelerometer and gyroscope interpolated onto one uniform clock at target_hz, split into "
                "segments at gaps (never interpolated across), with each sample's activity label. A sensor "
                "faster than target_hz is low-passed first (anti-aliasing; antialias_hz_* = 0: none needed).",
)
def fused_recording(context: dg.AssetExecutionContext, raw_recording: OneOrBatch,
                    preprocessing: PreprocessingResource) -> Events:
    cfg = preprocessing.to_config()

    def one(pid: str, rec: RawRecording) -> StageResult:
        with failing_clearly(pid):
            fused, stats = fuse_recording(rec, cfg)
        return StageResult(fused, {
            "fused_samples": stats.fused_samples,
            "segments": stats.segments,
            "duration_s": round(stats.duration_s, 2),
            "target_hz": cfg.target_hz,
            "accelerometer_native_hz": round(stats.accel.native_hz, 2),
            "gyroscope_native_hz": round(stats.gyro.native_hz, 2),
            "antialias_hz_accelerometer": stats.accel.antialias_hz or 0.0,
            "antialias_hz_gyroscope": stats.gyro.antialias_hz or 0.0,
            "gaps_accelerometer": stats.accel.gaps,
            "gaps_gyroscope": stats.gyro.gaps,
            "gap_seconds": round(max(stats.accel.gap_seconds, stats.gyro.gap_seconds), 2),
            "samples_lost_share": round(stats.lost_share, 4),
            "short_spans_dropped": stats.dropped_short_spans,
            "labelled_share": round(float(fused["label"].is_not_null().mean() or 0.0), 4),
            "preprocess_config": dg.MetadataValue.json(cfg.model_dump(mode="json")),
            **tabular_metadata(fused),
            **recording_plot(fused, f"{pid}: fused onto {cfg.target_hz:g} Hz, {stats.segments} segment(s), "
                             f"{stats.duration_s / 60:.1f} min"),
        }, checks.fused_checks(fused, stats, cfg))

    yield from run_stage(context, by_participant(context, raw_recording), one)


@participant_asset(
    group_name=GROUP, io_manager_key=TABLE_IO, code_version="filtered-2", kinds={"scipy"},
    check_specs=partitioned_specs("filtered_recording", checks.FILTERED_CHECKS),
    description="Gravity handled per the config (remove / keep / separate), zero-phase Butterworth per segment.",
)
def filtered_recording(context: dg.AssetExecutionContext, fused_recording: OneOrBatch,
                       preprocessing: PreprocessingResource) -> Events:
    cfg = preprocessing.to_config()

    def one(pid: str, fused: pl.DataFrame) -> StageResult:
        filtered = apply_gravity_handling(fused, cfg)
        stats = filtered.select(cfg.channels).describe().filter(pl.col("statistic").is_in(["mean", "std"]))
        plot = {} if cfg.gravity is GravityMode.KEEP else recording_plot(  # keep: fused_recording's picture
            filtered, f"{pid}: gravity {cfg.gravity.value} (Butterworth at {cfg.highpass_cutoff_hz:g} Hz)")
        return StageResult(filtered, {
            "gravity": cfg.gravity.value,
            "channels": list(cfg.channels),
            "samples": filtered.height,
            "channel_stats": frame_table(stats),
            **tabular_metadata(filtered),
            **plot,
        }, checks.filtered_checks(filtered, cfg))

    yield from run_stage(context, by_participant(context, fused_recording), one)


@participant_asset(
    group_name=GROUP, io_manager_key=WINDOWS_IO, code_version="windows-1", kinds={"numpy"},
    check_specs=partitioned_specs("windows", checks.WINDOW_CHECKS),
    description="Fixed-size windows within segments; labelled with the majority activity if it covers enough "
                "of the window, else unlabelled.",
)
def windows(context: dg.AssetExecutionContext, filtered_recording: OneOrBatch,
            preprocessing: PreprocessingResource) -> Events:
    cfg = preprocessing.to_config()

    def one(pid: str, filtered: pl.DataFrame) -> StageResult:
        with failing_clearly(pid):
            ws = window_recording(pid, filtered, cfg)
        counts = ws.class_counts()
        return StageResult(ws, {
            "windows": len(ws),
            "labelled_windows": int(ws.labeled.sum()),
            # what the retraining trigger counts (retrain_trigger): labelled windows x step, in minutes
            "labelled_minutes": round(int(ws.labeled.sum()) * cfg.window_step / cfg.target_hz / 60, 3),
            "unlabelled_windows": int((~ws.labeled).sum()),
            "window_shape": list(ws.X.shape[1:]),
            "windows_per_class": dg.MetadataValue.json(counts),
            "classes": len(counts),
        }, checks.window_checks(ws))

    yield from run_stage(context, by_participant(context, filtered_recording), one)


PREPROCESSING_ASSETS = [raw_recording, fused_recording, filtered_recording, windows]
