"""Jobs: per-participant preprocessing (one run per participant, steps in one process)."""

import dagster as dg

from har_assets.orchestration.partitions import participants
from har_assets.orchestration.preprocessing import PREPROCESSING_ASSETS

preprocess_job = dg.define_asset_job(
    "preprocess_participant",
    selection=dg.AssetSelection.assets(*PREPROCESSING_ASSETS),
    partitions_def=participants,
    executor_def=dg.in_process_executor,
    description="Raw files of one participant to labelled windows.",
)
