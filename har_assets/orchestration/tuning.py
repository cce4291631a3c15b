"""Opt-in hyper-parameter search: the `hyperparameter_search` job (an op, not an asset, so neither
"Materialize all" nor the retraining automation ever starts it).

Each trial re-windows the stored `fused_recording`s with its preprocessing parameters (gravity
handling, window step), splits the participants as `dataset_split` does, fits the scaler on the
training participants and trains; the objective is validation macro-F1 (the test participants
stay unseen). The study is resumable from its Optuna storage; in MLflow one parent run per study
(re-opened on resume) holds one nested run per trial.
"""

from functools import partial
from typing import TYPE_CHECKING, Any

import dagster as dg
import optuna
import polars as pl

from har_assets.config import GravityMode, PreprocessConfig
from har_assets.errors import PipelineDataError
from har_assets.ml.datasets import labelled_participants
from har_assets.ml.hyperparams import EpochStats
from har_assets.ml.mlflow_store import log_batch
from har_assets.ml.search import SearchConfig, open_study, pruning_callback, run_study, suggest
from har_assets.ml.split import SplitConfig, split_participants
from har_assets.orchestration.io_manager import ParquetIOManager
from har_assets.orchestration.mlflow_resource import MlflowTracking
from har_assets.orchestration.partitions import participants
from har_assets.orchestration.pydantic_config import config_class
from har_assets.orchestration.resources import PreprocessingResource
from har_assets.orchestration.tables import rows_table
from har_assets.orchestration.training import TRAINING_POOL
from har_assets.orchestration.training_resources import TrainingResource
from har_assets.signal.gravity import apply_gravity_handling
from har_assets.signal.pipeline import window_recording
from har_assets.signal.windowing import WindowSet

if TYPE_CHECKING:
    from mlflow import MlflowClient

SearchSection = config_class(SearchConfig, "SearchSection")
FUSED = dg.AssetKey("fused_recording")
STUDY_TAG = "har.optuna_study"


class OptunaStorage(dg.ConfigurableResource):
    """Where Optuna studies live (default: SQLite under `$HAR_HOME/optuna`)."""

    url: str


class WindowCache:
    """Windows of every participant per (gravity, window_step): trials share the filtering and windowing."""

    def __init__(self, fused: dict[str, pl.DataFrame]) -> None:
        self.fused = fused
        self._cache: dict[str, dict[str, WindowSet]] = {}

    def get(self, cfg: PreprocessConfig) -> dict[str, WindowSet]:
        """Windows of every participant that yields at least one under `cfg` (others are left out)."""
        key = cfg.fingerprint()
        if key not in self._cache:
            windows = {}
            for pid, frame in self.fused.items():
                try:
                    windows[pid] = window_recording(pid, apply_gravity_handling(frame, cfg), cfg)
                except PipelineDataError:
                    continue
            self._cache[key] = windows
        return self._cache[key]


def _parent_run(tracking: MlflowTracking, client: "MlflowClient", study_name: str) -> str | None:
    runs = client.search_runs([tracking.experiment_id()], f"tags.`{STUDY_TAG}` = '{study_name}'", max_results=1)
    return runs[0].info.run_id if runs else None


@dg.op(pool=TRAINING_POOL, out=dg.Out(dg.Nothing),
       description="Runs (or resumes) the Optuna study; each trial is a nested MLflow run.")
def optuna_study(context: dg.OpExecutionContext, config: SearchSection,  # type: ignore[valid-type]
                 training: TrainingResource, preprocessing: PreprocessingResource,
                 mlflow_tracking: MlflowTracking, optuna_storage: OptunaStorage,
                 har_tables: dg.ResourceParam[ParquetIOManager]) -> None:
    from har_assets.ml.experiment import run_experiment

    space = SearchConfig.model_validate(config.model_dump())
    registered = sorted(context.instance.get_dynamic_partitions(participants.name))
    fused = {pid: har_tables.load(FUSED, pid) for pid in registered if har_tables.exists(FUSED, pid)}
    if not fused:
        raise dg.Failure("no materialized fused_recording: run the preprocessing first")
    cache = WindowCache(fused)
    base_pre, base_model, base_train = preprocessing.to_config(), training.model_cfg(), training.train_cfg()
    split_cfg = training.split_config()
    if split_cfg.validation is None and split_cfg.validation_share == 0:
        split_cfg = SplitConfig.model_validate(split_cfg.model_dump() | {"validation_share": space.validation_share})
    study = open_study(optuna_storage.url, space)
    client = mlflow_tracking.client()

    def objective(trial: optuna.Trial, parent_run_id: str) -> float:
        pre, model_cfg, train_cfg = suggest(trial, space, base_pre, base_model, base_train)
        windows = cache.get(pre)
        labelled, unlabelled = labelled_participants(windows)
        split = split_participants(labelled, split_cfg, unlabelled)
        if not split.validation:
            raise ValueError("the search optimises validation macro-F1: configure validation participants")

        with mlflow_tracking.run(client, f"trial-{trial.number}", parent_run_id=parent_run_id,
                                 tags={"har.optuna_trial": str(trial.number)}) as run_id:

            def log_epoch(s: EpochStats) -> None:
                log_batch(client, run_id, metrics={"train_loss": s.train_loss, "val_macro_f1": s.val_macro_f1 or 0.0},
                          step=s.epoch)

            log_batch(client, run_id, params=trial.params | {"split.train": ",".join(split.train),
                                                             "split.validation": ",".join(split.validation)})
            try:
                result = run_experiment(windows, split, model_cfg, train_cfg, training.decoding_cfg(),
                                        on_epoch=pruning_callback(trial, log_epoch), evaluate_test=False)
            except optuna.TrialPruned:
                client.set_tag(run_id, "har.trial_state", "pruned")
                context.log.info(f"trial {trial.number} pruned: {trial.params}")
                raise
            value = float(result.val_macro_f1 or 0.0)
            log_batch(client, run_id, metrics={"best_val_macro_f1": value}, tags={"har.trial_state": "complete"})
        context.log.info(f"trial {trial.number}: val macro-F1 {value:.4f} with {trial.params}")
        return value

    parent = _parent_run(mlflow_tracking, client, space.study_name)
    with mlflow_tracking.run(client, f"search-{space.study_name}", run_id=parent,
                             tags={STUDY_TAG: space.study_name}) as parent_run_id:
        ran = run_study(study, partial(objective, parent_run_id=parent_run_id), space)
        best = _best(study)
        if best:
            # tags, not params: a resumed study may find a better trial (MLflow params are immutable)
            tags = {f"best.{k}": str(v) for k, v in best["params"].items()} | {"best.trial": str(best["trial"])}
            log_batch(client, parent_run_id, metrics={"best_val_macro_f1": best["value"]}, tags=tags)
    context.log.info(f"study '{space.study_name}': ran {ran} trials now, best {best}")
    trials = [[t.number, t.state.name, t.value if t.value is not None else "-",
               ", ".join(f"{k}={v}" for k, v in t.params.items())] for t in study.get_trials(deepcopy=False)]
    context.add_output_metadata({
        "study": space.study_name, "trials_run_now": ran, "trials_total": len(trials),
        "best_val_macro_f1": best["value"] if best else float("nan"),
        "best_params": dg.MetadataValue.json(best["params"] if best else {}),
        "launchpad_config": dg.MetadataValue.json(launchpad_snippet(best["params"]) if best else {}),
        "trials": rows_table(["trial", "state", "val macro-F1", "params"], trials),
        "mlflow_parent_run_id": parent_run_id,
    })


def _best(study: optuna.Study) -> dict[str, Any] | None:
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        return None
    trial = max(complete, key=lambda t: t.value if t.value is not None else float("-inf"))
    return {"trial": trial.number, "value": trial.value, "params": trial.params}


def launchpad_snippet(params: dict[str, Any]) -> dict[str, Any]:
    """The best parameters as the `resources` run config that applies them to the training assets."""
    pre = {k: params[k] for k in ("window_step",) if k in params}
    if "gravity" in params:
        pre["gravity"] = GravityMode(params["gravity"]).name  # Dagster config takes enum names
    model = {k: params[k] for k in ("conv_filters", "kernel_size", "lstm_units", "dropout") if k in params}
    train = {k: params[k] for k in ("lr",) if k in params}
    return {"resources": {"preprocessing": {"config": pre},
                          "training": {"config": {"model": model, "train": train}}}}


@dg.job(name="hyperparameter_search",
        description="Opt-in Optuna study over model, optimisation and preprocessing parameters (resumable).")
def hyperparameter_search_job() -> None:
    optuna_study()
