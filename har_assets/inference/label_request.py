"""A participant's label request: the few spans whose labels would help most, as rows a user fills in.

The rows are `start,end,activity` (ISO-8601 UTC, activity empty) followed by the model's guess, its calibrated
confidence and why the span was chosen. A user fills `activity` and appends the rows to the participant's
`labels.csv` (the reader takes the `start`, `end` and `activity` columns by name and ignores the rest); the next
scoring uses those minutes for that person, and the next training for the model. The same rows appear on the
participant's page in the Dagster UI (`participant_predictions`' metadata) and in `har labels request`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from har_assets.ml.label_requests import SPAN_S, request_spans

if TYPE_CHECKING:
    from har_assets.inference.predictor import WindowPredictions

COLUMNS = ("start", "end", "activity", "model_guess", "guess_confidence", "reason")


def _iso(ms: float) -> str:
    return np.datetime_as_string(np.datetime64(round(float(ms)), "ms"), unit="ms") + "Z"


def label_request(pred: WindowPredictions, minutes: float, step_s: float, span_s: float = SPAN_S) -> pl.DataFrame:
    """Spans worth `minutes` of the recording (in `span_s`-second spans of windows `step_s` seconds apart, none over
    an already labelled window), in time order, as `COLUMNS`."""
    span_windows = max(1, round(span_s / step_s))
    labelled = pred.true_index >= 0
    spans = request_spans(pred.proba, pred.window_proba, pred.embedding, pred.windows.segment, span_windows,
                          max(1, round(minutes * 60 / span_s)), labelled=labelled)
    disagree = pred.window_proba.argmax(axis=1) != pred.proba.argmax(axis=1)
    rows = []
    for s in spans:
        w = slice(s.first, s.last + 1)
        why = [f"mean confidence {s.confidence:.2f}"]
        if disagree[w].any():
            why.append(f"{int(disagree[w].sum())} window(s) alone disagree with the decoded label")
        why.append(f"movement cluster {s.cluster}")
        rows.append((_iso(pred.start_ms[s.first]), _iso(pred.end_ms[s.last]), "", pred.classes[s.guess],
                     round(s.confidence, 4), "; ".join(why)))
    return pl.DataFrame(rows, schema={c: pl.String if c != "guess_confidence" else pl.Float64 for c in COLUMNS},
                        orient="row")


def requested_minutes(request: pl.DataFrame) -> float:
    """Minutes the request covers."""
    if request.height == 0:
        return 0.0
    start = request["start"].str.to_datetime(time_unit="ms", time_zone="UTC")
    end = request["end"].str.to_datetime(time_unit="ms", time_zone="UTC")
    return float((end - start).dt.total_milliseconds().sum()) / 60000
