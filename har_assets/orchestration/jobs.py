"""Jobs: preprocessing of one participant per run; backfills batch participants."""

import dagster as dg

from har_assets.orchestration.preprocessing import PREPROCESSING_ASSETS

preprocess_job = dg.define_asset_job(
    "preprocess_participant",
    selection=dg.AssetSelection.assets(*PREPROCESSING_ASSETS),
    description="Raw files of one participant to labelled windows.",
)
