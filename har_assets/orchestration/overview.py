"""`cohort_overview`: where a researcher starts. One row per participant with what every stage found about them,
and pictures that compare people: classes per participant, channel levels (who differs), correlations."""

import time
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from har_assets.inference.drift import DRIFT_CHECKS
from har_assets.orchestration import automation
from har_assets.orchestration.asset_store import TABLE_IO
from har_assets.orchestration.check_gate import PREPROCESSING_CHECKS, check_keys, failing_checks
from har_assets.orchestration.freshness import latest_materializations, metadata_value
from har_assets.orchestration.partitions import participants
from har_assets.orchestration.resources import RawStore
from har_assets.orchestration.retries import TRANSIENT_RETRY
from har_assets.orchestration.tables import frame_table, tabular_metadata
from har_assets.orchestration.training import ALL_PARTITIONS
from har_assets.plots.cohort import channel_levels_png, class_distribution_png, correlation_png
from har_assets.plots.png import png_markdown
from har_assets.signal.channel_stats import cohort_channels
from har_assets.signal.windowing import WindowSet

GROUP = "overview"
OVERVIEW_SCHEMA = {"participant": pl.String, "raw_folder": pl.String, "duration_min": pl.Float64,
                   "accelerometer_hz": pl.Float64, "gyroscope_hz": pl.Float64, "gaps": pl.Int64,
                   "samples_lost_share": pl.Float64,
                   "labelled_share": pl.Float64, "windows": pl.Int64, "windows_per_class": pl.String,
                   "failed_checks": pl.String, "split_role": pl.String, "test_accuracy": pl.Float64,
                   "drift": pl.String, "estimated_accuracy": pl.Float64, "estimated_accuracy_band": pl.String,
                   "flags": pl.String, "label_request_minutes": pl.Float64, "differs_from_cohort": pl.String}
CHECKS = check_keys({**PREPROCESSING_CHECKS, "participant_drift": DRIFT_CHECKS})
UPSTREAM = ["raw_recording", "fused_recording", "dataset_split", "model_evaluation", "participant_predictions",
            "participant_drift"]


def _latest(instance: dg.DagsterInstance, asset: str) -> dg.EventLogRecord | None:
    records = instance.fetch_materializations(dg.AssetKey(asset), limit=1).records
    return records[0] if records else None


def roles(instance: dg.DagsterInstance) -> dict[str, str]:
    """Participant -> its role in the latest split (train, validation, test, unlabelled, failed checks)."""
    split = _latest(instance, "dataset_split")
    found: dict[str, str] = {}
    for role, key in (("train", "train"), ("validation", "validation"), ("test", "test"),
                      ("unlabelled", "excluded_unlabelled")):
        found |= dict.fromkeys(metadata_value(split, key) or [], role)
    return found | dict.fromkeys(metadata_value(split, "excluded_failed_checks") or {}, "left out: failed checks")


def test_accuracy(instance: dg.DagsterInstance) -> dict[str, float]:
    """Participant -> accuracy in the latest model evaluation (test participants only)."""
    table = metadata_value(_latest(instance, "model_evaluation"), "per_participant")
    return {r.data["participant"]: r.data["accuracy"] for r in (table.records if table else [])}


def overview_frame(instance: dg.DagsterInstance, windows: dict[str, WindowSet], outliers: dict[str, list[str]],
                   raw_root: Path) -> pl.DataFrame:
    """One row per registered participant (with windows or not): whether its raw folder is there, the stages'
    figures, check failures, split role, test accuracy, drift, the label-free estimate and flags of its scoring,
    and the channels whose level differs from the cohort's."""
    pids = sorted(set(instance.get_dynamic_partitions(participants.name)) | set(windows))
    raw, fused, scored, drift = (latest_materializations(instance, a, pids) for a in (
        "raw_recording", "fused_recording", "participant_predictions", "participant_drift"))
    failing, role, accuracy = failing_checks(instance, pids, CHECKS), roles(instance), test_accuracy(instance)

    def counts(ws: WindowSet | None) -> str:
        return ", ".join(f"{c}={n}" for c, n in sorted(ws.class_counts().items())) or "-" if ws else "no windows"

    rows: list[dict[str, Any]] = []
    for pid in pids:
        f, d, p = fused.get(pid), drift.get(pid), scored.get(pid)
        drifted = metadata_value(d, "drifted_channels")
        flagged = metadata_value(p, "flagged")
        rows.append({
            "participant": pid,
            "raw_folder": "present" if (raw_root / pid).is_dir() else "missing",
            "duration_min": round((metadata_value(raw.get(pid), "duration_s") or 0.0) / 60, 2),
            "accelerometer_hz": metadata_value(f, "accelerometer_native_hz"),
            "gyroscope_hz": metadata_value(f, "gyroscope_native_hz"),
            "gaps": (metadata_value(f, "gaps_accelerometer") or 0) + (metadata_value(f, "gaps_gyroscope") or 0),
            "samples_lost_share": metadata_value(f, "samples_lost_share"),
            "labelled_share": metadata_value(f, "labelled_share"),
            "windows": len(windows[pid]) if pid in windows else 0,
            "windows_per_class": counts(windows.get(pid)),
            "failed_checks": ", ".join(failing.get(pid, [])) or "none",
            "split_role": role.get(pid, "not in a split"),
            "test_accuracy": accuracy.get(pid),
            "drift": "not scored" if d is None else (f"{drifted} channel(s) drifted" if drifted else "ok"),
            "estimated_accuracy": metadata_value(p, "estimated_accuracy"),
            "estimated_accuracy_band": metadata_value(p, "estimated_accuracy_band"),
            "flags": "not scored" if p is None else "; ".join(metadata_value(p, "flag_reasons") or []) if flagged
            else "none",
            "label_request_minutes": metadata_value(p, "label_request_minutes"),
            "differs_from_cohort": ", ".join(outliers.get(pid, [])) or "no",
        })
    return pl.DataFrame(rows, schema=OVERVIEW_SCHEMA)


@dg.asset(
    retry_policy=TRANSIENT_RETRY,
    group_name=GROUP, io_manager_key=TABLE_IO, kinds={"polars"}, ins={"windows": ALL_PARTITIONS}, deps=UPSTREAM,
    automation_condition=automation.refresh_overview(),
    description="The cohort at a glance, refreshed when any participant changes: one row per participant "
                "(raw folder present or missing, duration, native rates, gaps, samples lost, labelled share, windows "
                "per class, failed checks, "
                "split role, test accuracy, drift, the label-free accuracy estimate with its band, flags and the "
                "minutes of the label request, channels whose level differs from the cohort's) and pictures: "
                "classes per participant, channel levels per participant, channel correlations.",
)
def cohort_overview(context: dg.AssetExecutionContext, raw_store: RawStore,
                    windows: dict[str, WindowSet] | None) -> dg.Output[pl.DataFrame]:
    start = time.perf_counter()
    windows = {p: w for p, w in (windows or {}).items() if len(w)}  # None: no participant is registered yet
    pictures: dict[str, bytes] = {}
    outliers: dict[str, list[str]] = {}
    if windows:  # else: a table of the registered participants, nothing to compare yet
        channels = next(iter(windows.values())).channels
        stats = cohort_channels({p: w.X for p, w in windows.items() if w.channels == channels}, channels)
        outliers = stats.outliers()
        counts = {p: w.class_counts() for p, w in windows.items()}
        if any(counts.values()):  # an unlabelled study (scoring only) has no classes to draw
            pictures["class_distribution"] = class_distribution_png(counts)
        pictures |= {"channel_levels": channel_levels_png(stats), "channel_correlations": correlation_png(stats)}
    frame = overview_frame(context.instance, windows, outliers, Path(raw_store.root))
    missing = frame.filter(pl.col("raw_folder") == "missing")["participant"].to_list()
    return dg.Output(frame, metadata={
        "participants": frame_table(frame),
        **tabular_metadata(frame),
        "windows": int(frame["windows"].sum()) if frame.height else 0,
        "participants_differing": int((frame["differs_from_cohort"] != "no").sum()) if frame.height else 0,
        "participants_failing_checks": int((frame["failed_checks"] != "none").sum()) if frame.height else 0,
        "participants_missing": len(missing),
        "participants_flagged": int(frame["flags"].is_in(["none", "not scored"]).not_().sum()) if frame.height else 0,
        "missing_participants": dg.MetadataValue.json(missing),
        **{name: dg.MetadataValue.md(png_markdown(png, name.replace("_", " "))) for name, png in pictures.items()},
        "plot_bytes": sum(len(png) for png in pictures.values()),
        "refresh_seconds": round(time.perf_counter() - start, 3),
    })


OVERVIEW_ASSETS = [cohort_overview]
