"""Re-splitting on new data and re-scoring with a new champion: declarative automation conditions and their sensors.

The chain, as the UI's automation evaluations show it (each condition carries a label):

* `dataset_split` re-runs when some participant's `windows` changed since its last run, at most
  once per `HAR_RETRAIN_CRON` interval (default hourly; the first split as soon as there are
  windows), and never while windows are still being materialized: a backfill of 30 participants
  gives one re-split, not 30.
* Its data version hashes the split and the labelled participants' windows, so a new
  *unlabelled* participant, or a re-run over the same data, leaves it unchanged. Only a changed
  data version requests, all in one tick and so as one backfill run in dependency order:
  `scaler` and `normalized_windows` (every participant with windows), so that whatever trains next
  reads inputs consistent with the split; and, while there is no model yet, the first `model`,
  `model_evaluation` and `registered_model`. (Each of them depends on `dataset_split` directly:
  Dagster does not chain `will_be_requested` across a partitioned/unpartitioned boundary.)
* Later models are not retrained on every changed split: `retrain_when_it_pays` (`retrain_trigger`)
  launches `train_and_evaluate` only when enough labelled minutes changed or enough people became
  flagged, with the reason on each tick and run.
* A new participant whose arrival leaves the split unchanged (no labels) is normalized with the
  current scaler once the split has run; one that changes it is normalized with the new scaler, in
  the split's backfill.

Scoring: `participant_predictions` of a participant runs when its `raw_recording` changed or the
champion changed (the data version of `registered_model` names the champion, so a retrain that
keeps the incumbent re-scores nobody); `participant_drift` follows its predictions.

Bad data stops there: scoring and normalizing require `all_deps_blocking_checks_passed()` (the
checks are partitioned by participant, so one participant's failure blocks only that participant),
and `dataset_split` leaves out participants whose latest preprocessing failed a blocking check.

Runs requested by the sensors carry the tag `har/trigger`.
"""

from collections.abc import Sequence

import dagster as dg

from har_assets.orchestration.sensor_status import sensor_status

AC = dg.AutomationCondition


def retrain_on_new_windows(cron: str) -> dg.AutomationCondition:
    """New windows since the last split, and a `cron` tick passed since then (or no split exists yet)."""
    new_windows = AC.any_deps_updated().since_last_handled().with_label(
        "windows changed, or participants were removed, since the last split")
    interval = (AC.cron_tick_passed(cron).since_last_handled() | AC.missing()).with_label(
        f"no split yet, or a '{cron}' tick passed since the last one")
    idle = (~AC.any_deps_in_progress() & ~AC.in_progress()).with_label("no windows being materialized")
    return (new_windows & interval & idle).with_label(f"re-split on new windows, at most once per '{cron}'")


def _split_changed(also: dg.AutomationCondition | None = None) -> dg.AutomationCondition:
    """Latched from the tick the split's data version changed (when `also` held then) until handled."""
    changed = AC.any_deps_match(AC.data_version_changed()).allow(dg.AssetSelection.assets("dataset_split"))
    return (changed if also is None else changed & also).since_last_handled().with_label(
        "dataset_split's data version changed (new labelled data)")


def _split_idle() -> dg.AutomationCondition:
    return (~AC.any_deps_in_progress() & ~AC.in_progress()).allow(dg.AssetSelection.assets("dataset_split"))


def after_split_changed() -> dg.AutomationCondition:
    """The split's data version changed: new or changed labelled data (not merely a re-run)."""
    return (_split_changed() & _split_idle()).with_label("refit: the split changed")


def first_model() -> dg.AutomationCondition:
    """The split's data version changed and there is no model yet (later ones: `retrain_when_it_pays`)."""
    return (_split_changed() & AC.missing() & _split_idle()).with_label("the first model: a split and no model yet")


def normalize_condition() -> dg.AutomationCondition:
    """The split changed (normalize every participant with windows, in the retrain's backfill), or a participant's
    windows changed and a split has run since without changing (an unlabelled newcomer: normalize it alone).

    A newcomer waits for that split instead of being normalized on arrival: if the split then changes, the
    participant must be normalized with the *new* scaler in the retrain's backfill, and a run in flight with
    the old scaler would race it."""
    windows, split = (dg.AssetSelection.assets(k) for k in ("windows", "dataset_split"))
    windows_changed = AC.any_deps_match(AC.newly_updated()).allow(windows)
    split_ran_since = AC.any_deps_match(AC.newly_updated()).allow(split).since(windows_changed).with_label(
        "dataset_split ran after these windows")
    newcomer = ((AC.newly_missing() | windows_changed).since_last_handled() & split_ran_since
                & ~AC.any_deps_missing() & ~AC.any_deps_in_progress()).with_label("its windows changed")
    rescale = _split_changed(also=~AC.any_deps_missing().allow(windows)).with_label(
        "the split changed: normalize with the new scaler")
    return ((newcomer | rescale) & ~AC.in_progress() & AC.all_deps_blocking_checks_passed()).with_label(
        "normalize after the split saw the windows")


def after(upstream: str) -> dg.AutomationCondition:
    """Eager on one upstream asset only (the other inputs changing does not re-run it)."""
    return AC.eager().allow(dg.AssetSelection.assets(upstream)).with_label(f"after {upstream} updates")


def score_condition() -> dg.AutomationCondition:
    """Score a participant when its recording changed or another version became champion."""
    recording, registry = dg.AssetSelection.assets("raw_recording"), dg.AssetSelection.assets("registered_model")
    new_recording = AC.any_deps_match(AC.newly_updated()).allow(recording).with_label("its recording changed")
    new_champion = AC.any_deps_match(AC.data_version_changed()).allow(registry).with_label("the champion changed")
    # latched until handled: a change seen while an input is missing or running is not lost, and one already
    # handled ("Materialize all", `har pipeline --force` scored after it) asks for nothing more
    changed = (new_recording | new_champion).since_last_handled().with_label("its recording or the champion changed")
    return (changed & ~AC.any_deps_missing() & ~AC.any_deps_in_progress()
            & ~AC.in_progress() & AC.all_deps_blocking_checks_passed()).with_label("score with the current champion")


def refresh_overview() -> dg.AutomationCondition:
    """Some participant's recording, windows, split, evaluation or drift changed since the last overview, and nothing
    upstream is running (a backfill of many participants gives one refresh at its end, or one per pause)."""
    changed = (AC.any_deps_updated().since_last_handled() | AC.missing().newly_true()).with_label(
        "a participant changed since the last overview, or there is none yet")
    idle = (~AC.any_deps_in_progress() & ~AC.in_progress()).with_label("nothing upstream is running")
    return (changed & idle).with_label("refresh the cohort overview")


def with_retrain_cron(assets: Sequence[dg.AssetsDefinition | dg.AssetSpec],
                      cron: str) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    """The assets with `dataset_split`'s condition for this cron (`HarSettings.retrain_cron`), applied when the
    definitions are built, not at import."""
    split = dg.AssetKey("dataset_split")
    return [a.map_asset_specs(lambda spec: spec.replace_attributes(automation_condition=retrain_on_new_windows(cron))
                              if spec.key == split else spec)
            if isinstance(a, dg.AssetsDefinition) and split in a.keys else a for a in assets]


def automation_sensors(cron: str, retrain: bool = True, scoring: bool = True, overview: bool = True,
                       interval_s: int = 60) -> list[dg.AutomationConditionSensorDefinition]:
    """The retraining, scoring and overview sensors, each deployed running or stopped (`HarSettings.autostart_*`),
    evaluating every `interval_s` seconds."""

    def _automation_sensor(name: str, group: str, running: bool, trigger: str,
                           description: str) -> dg.AutomationConditionSensorDefinition:
        return dg.AutomationConditionSensorDefinition(
            name, target=dg.AssetSelection.groups(group).materializable(), default_status=sensor_status(running),
            minimum_interval_seconds=interval_s, run_tags={"har/trigger": trigger}, description=description)

    return [
        _automation_sensor(
            "retrain_on_new_data", "training", retrain, "automation: new labelled data",
            "Evaluates the training assets' automation conditions: re-split when windows change (at most once "
            f"per '{cron}'), refit the scaler and normalize when the split's data changes, train the first model, "
            "normalize new participants (later retraining: retrain_when_it_pays)."),
        _automation_sensor(
            "score_with_champion", "scoring", scoring, "automation: new recording or champion",
            "Evaluates the scoring assets' automation conditions: score a participant when its recording or the "
            "champion changes."),
        _automation_sensor(
            "refresh_cohort_overview", "overview", overview, "automation: a participant changed",
            "Evaluates cohort_overview's automation condition: refresh it when any participant's recording, "
            "windows, split, evaluation or drift changed and nothing upstream is running."),
    ]
