"""The champion decision: register a model version and move the alias only for a better model.

Both the candidate and the current champion are scored by the same function on the same test
participants, each on windows made with its own preprocessing config (the champion's are rebuilt
from the raw files when its config differs). A tie keeps the incumbent. The alias moves only if it
still points at the champion compared against (`move_alias_if_unchanged`). Every decision is
written as tags (and the description) on the new version and on the candidate's MLflow run.
"""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from har_assets.config import PreprocessConfig
from har_assets.ml.datasets import WindowSets
from har_assets.ml.experiment import score_bundle
from har_assets.ml.mlflow_model import DIGEST_TAG, record_digest
from har_assets.ml.split import DatasetSplit
from har_assets.orchestration.mlflow_resource import MlflowTracking, alias_holder
from har_assets.orchestration.resources import RawStore
from har_assets.orchestration.training_records import (
    BundleScores,
    ModelEvaluation,
    PreviousChampion,
    RegisteredModel,
    TrainedModel,
)
from har_assets.raw.layout import locate_files
from har_assets.raw.reader import read_files
from har_assets.signal.pipeline import preprocess
from har_assets.signal.windowing import WindowSet


def find_or_register(tracking: MlflowTracking, client: MlflowClient, run_id: str, model_uri: str) -> ModelVersion:
    """The version of this run's model, registering it (and the registered model) if needed, with its bundle's
    content hash recorded on it before anything can point an alias at it."""
    import mlflow

    name = tracking.registered_model_name
    found = [v for v in client.search_model_versions(f"name='{name}' and run_id='{run_id}'") if v.source == model_uri]
    if found:
        version = found[0]
    else:
        with tracking.global_uris():  # MLflow's SQL registry looks a `models:/m-…` source up in the global store
            version = mlflow.register_model(model_uri, name)
    record_digest(client, name, version)
    return client.get_model_version(name, version.version)


def windows_with(cfg: PreprocessConfig, current: PreprocessConfig, windows: WindowSets, pids: list[str],
                 raw_store: RawStore) -> dict[str, WindowSet]:
    """The participants' windows under `cfg`: the stored ones if it is the current config, else rebuilt from raw."""
    if cfg == current:
        return {p: windows[p] for p in pids}
    return {p: preprocess(read_files(locate_files(raw_store.folder(p)), cfg, raw_store.limits()), cfg)[0] for p in pids}


def move_alias_if_unchanged(client: MlflowClient, name: str, alias: str, version: str,
                            compared: str | None) -> tuple[bool, str | None]:
    """Point `alias` at `version` only if it still points at `compared` (None: at no version), the champion the
    decision was made against; returns whether it moved and the version holding it now.

    MLflow has no compare-and-set: another writer can still move the alias between this re-read and the set, a
    window of one registry query (milliseconds) instead of the whole evaluation (minutes)."""
    holder = alias_holder(client, name, alias)
    now = str(holder.version) if holder else None
    if now != compared:
        return False, now
    client.set_registered_model_alias(name, alias, version)
    return True, version


def _champion_trained_on(client: MlflowClient, champion: ModelVersion, test: list[str]) -> list[str]:
    if not champion.run_id:
        return []
    trained = client.get_run(champion.run_id).data.params.get("split.train", "")
    return sorted(set(test) & set(filter(None, trained.split(","))))


def decide_and_register(tracking: MlflowTracking, model: TrainedModel, evaluation: ModelEvaluation,
                        split: DatasetSplit, windows: WindowSets, raw_store: RawStore,
                        dagster_run_id: str) -> RegisteredModel:
    client = tracking.client()
    name, alias = tracking.registered_model_name, tracking.champion_alias
    version = find_or_register(tracking, client, model.mlflow_run_id, model.model_uri)
    candidate = tracking.load_bundle(model.model_uri, version.tags.get(DIGEST_TAG))
    cand = BundleScores.model_validate(score_bundle(candidate, windows, split.test))
    champion = tracking.champion()
    previous: PreviousChampion | None = None
    tags: dict[str, str] = {}
    if champion is None:
        promote, decision, reason = True, "promoted", f"no '{alias}' existed: this version becomes the first"
    elif str(champion.version) == str(version.version):
        promote, decision, reason = True, "already_champion", f"this version already holds '{alias}'"
    else:
        previous = PreviousChampion(version=int(champion.version), run_id=champion.run_id)
        try:
            champ = tracking.load_bundle(f"models:/{name}/{champion.version}", champion.tags.get(DIGEST_TAG))
            champ_windows = windows_with(champ.preprocess, candidate.preprocess, windows, split.test, raw_store)
            scores = BundleScores.model_validate(score_bundle(champ, champ_windows, split.test))
        except Exception as exc:  # a champion that cannot be scored is never replaced blindly
            promote, decision = False, "not_promoted"
            reason = (f"current '{alias}' v{champion.version} could not be evaluated on test participants "
                      f"{split.test}: {exc}")
        else:
            previous = previous.model_copy(update=scores.model_dump())
            overlap = _champion_trained_on(client, champion, split.test)
            if overlap:
                tags["har.champion_trained_on_test_participants"] = ",".join(overlap)
            promote = cand.macro_f1 > scores.macro_f1
            decision = "promoted" if promote else "not_promoted"
            verb = "beats" if promote else "does not beat"
            reason = (f"test macro-F1 {cand.macro_f1:.4f} {verb} '{alias}' v{champion.version}'s "
                      f"{scores.macro_f1:.4f} on the same test participants {split.test}")
    if promote:
        compared = str(champion.version) if champion else None
        moved, now = move_alias_if_unchanged(client, name, alias, str(version.version), compared)
        if not moved:
            promote, decision = False, "not_promoted"
            reason = (f"'{alias}' changed during evaluation (from {f'v{compared}' if compared else 'none'} to "
                      f"{f'v{now}' if now else 'none'}), so it was not moved; re-run to compare against the new "
                      f"'{alias}'. The evaluation: {reason}")
    tags |= {
        "har.decision": decision,
        "har.reason": reason,
        "har.test_macro_f1": f"{cand.macro_f1:.6f}",
        "har.test_accuracy": f"{cand.accuracy:.6f}",
        "har.test_participants": ",".join(split.test),
        "har.previous_champion_version": str(previous.version) if previous else "none",
        "har.previous_champion_test_macro_f1": f"{previous.macro_f1:.6f}"
        if previous and previous.macro_f1 is not None else "none",
        "har.evaluation_macro_f1": f"{evaluation.macro_f1:.6f}",
        "har.dagster_run_id": dagster_run_id,
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version.version, key, value)
    client.update_model_version(name, version.version, description=reason)
    client.set_tag(model.mlflow_run_id, "har.registered_version", str(version.version))
    client.set_tag(model.mlflow_run_id, "har.registry_decision", decision)
    return RegisteredModel(name=name, version=int(version.version), champion=promote, decision=decision,
                           reason=reason, candidate=cand, previous_champion=previous, test_participants=split.test,
                           model_uri=f"models:/{name}/{version.version}", mlflow_run_id=model.mlflow_run_id)
