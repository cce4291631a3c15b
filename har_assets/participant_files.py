"""Files a study hands to people: a participant's label request and their predictions export.

`har labels request ID` scores the participant's raw folder with the champion (as `participant_predictions` does)
and writes the spans whose labels would help most to `$HAR_HOME/label_requests/ID.csv`, never into the raw folder.
`har predictions export ID` writes the participant's stored timeline (`participant_predictions`) one row per window
with ISO-8601 UTC times, for a researcher's statistics.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

import polars as pl
from upath import UPath

from har_assets.home import HarHome
from har_assets.inference.timeline import PROBA_PREFIX
from har_assets.objectstore import write_atomically
from har_assets.raw.layout import validate_participant_id
from har_assets.settings import HarSettings

LABEL_REQUESTS = "label_requests"
EXPORTS = "exports"
ISO = "%Y-%m-%dT%H:%M:%S%.3fZ"


class ParticipantFileError(RuntimeError):
    """The file cannot be made (no such participant, no champion, nothing scored yet)."""


def request_labels(home: HarHome, settings: HarSettings, participant: str, minutes: float) -> tuple[Path, pl.DataFrame]:
    """The participant's label request, written to `$HAR_HOME/label_requests/<participant>.csv`."""
    from har_assets.inference.label_request import label_request
    from har_assets.inference.predictor import ModelUnavailable, Predictor
    from har_assets.raw.layout import locate_files
    from har_assets.raw.reader import read_files

    pid = validate_participant_id(participant)
    folder = home.raw / pid
    if not folder.is_dir():
        raise ParticipantFileError(f"no raw folder {folder} for participant '{pid}'")
    predictor = Predictor(home.mlflow_tracking_uri(), settings.model_name, settings.model_alias)
    predictor.refresh()
    try:
        model = predictor.require()
    except ModelUnavailable as exc:
        raise ParticipantFileError(f"no champion to ask with: {predictor.last_error or exc} (run har pipeline "
                                   "first)") from exc
    recording = read_files(locate_files(folder), model.preprocess_config, home.read_limits())
    cfg = model.preprocess_config
    request = label_request(model.predict_recording(recording), minutes, cfg.window_step / cfg.target_hz)
    path = home.root / LABEL_REQUESTS / f"{pid}.csv"
    write_atomically(UPath(path), request.write_csv().encode())
    return path, request


def export_frame(timeline: pl.DataFrame) -> pl.DataFrame:
    """One row per window: start and end (UTC), segment, the predicted activity (decoded over time where the model
    does), its confidence, the label of the window alone, the label once the person's own labelled minutes are used
    (empty without them), the calibrated probability of every class, the out-of-distribution score, the model."""
    probabilities = [c for c in timeline.columns if c.startswith(PROBA_PREFIX)]
    return timeline.select(
        "start", "end", "segment", pl.col("label").alias("activity"), "confidence", "window_label",
        *(["personal_label"] if "personal_label" in timeline.columns else []), *probabilities,
        *(["ood_score"] if "ood_score" in timeline.columns else []), "model_name", "model_version")


def export_predictions(home: HarHome, participant: str, fmt: Literal["csv", "parquet"],
                       out: Path | None = None) -> tuple[Path, int]:
    """The participant's stored timeline written as `fmt` (CSV: times as ISO-8601 UTC text; Parquet: UTC
    timestamps) to `out` (default `$HAR_HOME/exports/<participant>.<fmt>`) in one step; (path, rows)."""
    import dagster as dg

    from har_assets.orchestration.asset_store import TABLE_IO, store_resources

    pid = validate_participant_id(participant)
    store = store_resources(home.assets_uri())[TABLE_IO]
    key = dg.AssetKey("participant_predictions")
    if not store.exists(key, pid):
        raise ParticipantFileError(f"participant '{pid}' has no stored timeline: score it first (har pipeline, or "
                                   "materialize participant_predictions)")
    frame = export_frame(store.load(key, pid))
    path = out or home.root / EXPORTS / f"{pid}.{fmt}"
    if fmt == "csv":
        data = frame.with_columns(pl.col("start", "end").dt.strftime(ISO)).write_csv().encode()
    else:
        buffer = io.BytesIO()
        frame.write_parquet(buffer)
        data = buffer.getvalue()
    write_atomically(UPath(path), data)
    return path, frame.height
