"""An evaluation in MLflow: one parent run, a nested run per variant, a nested run per fold under it.

Runs are written through an explicit `MlflowClient` (no fluent, process-global active run), as
soon as each fold finishes, so a long evaluation can be followed in the MLflow UI and a failed
fold shows as a FAILED run with its error. Variant runs carry the full configuration as params;
fold runs the per-epoch curves, the test scores and per-class F1.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from mlflow import MlflowClient

from har_assets.ml.crossval import FoldResult
from har_assets.ml.metrics import confusion_matrix_png
from har_assets.ml.mlflow_store import create_run, ensure_sqlite_folder, experiment_id, flat_params, log_batch
from har_assets.ml.variants import Variant

DEFAULT_EXPERIMENT = "har-evaluate"
MAX_PARAM_LENGTH = 6000  # MLflow refuses longer param values


class EvaluationTracker:
    """Writes one `har evaluate` run tree to an MLflow store."""

    def __init__(self, tracking_uri: str, experiment: str = DEFAULT_EXPERIMENT,
                 artifact_location: str | None = None) -> None:
        ensure_sqlite_folder(tracking_uri)
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.experiment_id = experiment_id(self.client, experiment, artifact_location)
        self.parent_id: str | None = None

    def _run(self, name: str, parent: str | None, tags: dict[str, str] | None = None) -> str:
        return create_run(self.client, self.experiment_id, name, tags, parent)

    def _log(self, run_id: str, metrics: dict[str, float | None] | None = None, params: dict[str, str] | None = None,
             tags: dict[str, str] | None = None, step: int = 0) -> None:
        log_batch(self.client, run_id, metrics=metrics, tags=tags, step=step,
                  params={k: v[:MAX_PARAM_LENGTH] for k, v in (params or {}).items()})

    def start(self, name: str, params: dict[str, str]) -> str:
        self.parent_id = self._run(name, None, {"har.kind": "evaluation"})
        self._log(self.parent_id, params=params)
        return self.parent_id

    def start_variant(self, variant: Variant) -> str:
        run_id = self._run(variant.name, self.parent_id, {"har.kind": "variant",
                                                         "har.overrides": repr(variant.overrides)})
        cfg = variant.config
        self._log(run_id, params={**flat_params("preprocess", cfg.preprocess.model_dump(mode="json")),
                                  **flat_params("model", cfg.model.model_dump(mode="json")),
                                  **flat_params("train", cfg.train.model_dump(mode="json")),
                                  **flat_params("split", cfg.split.model_dump(mode="json"))})
        return run_id

    def log_fold(self, variant_run: str, result: FoldResult) -> str:
        run_id = self._run(f"fold {result.fold} seed {result.seed}", variant_run,
                           {"har.kind": "fold", "har.test_participants": ",".join(result.test)})
        for e in result.epochs:
            self._log(run_id, {"train_loss": e.train_loss, "val_loss": e.val_loss, "val_macro_f1": e.val_macro_f1,
                               "lr": e.lr, "epoch_seconds": e.seconds}, step=e.epoch)
        metrics: dict[str, float | None] = {"seconds": result.seconds, "epochs": len(result.epochs)}
        if result.ok:
            report = result.report
            metrics |= {"macro_f1": report["macro_f1"], "accuracy": report["accuracy"],
                        **{f"f1.{c}": s["f1"] for c, s in report["per_class"].items() if s["support"]},
                        **{f"macro_f1.{k}": v for k, v in report.get("steps", {}).items()},
                        **{f"timeline.{k}": v for k, v in report.get("timeline", {}).items()}}
            self._log(run_id, metrics)
            self.client.log_text(run_id, report["classification_report"], "classification_report.txt")
        else:
            self._log(run_id, metrics, tags={"har.error": result.error or ""})
            self.client.log_text(run_id, result.detail or result.error or "", "error.txt")
        self.client.set_terminated(run_id, "FINISHED" if result.ok else "FAILED")
        return run_id

    def finish_variant(self, run_id: str, summary: dict) -> None:
        self._log(run_id, {"macro_f1_mean": summary["macro_f1_mean"], "macro_f1_sd": summary["macro_f1_sd"],
                           "accuracy_mean": summary["accuracy_mean"], "epochs_mean": summary["epochs_mean"],
                           "seconds_per_epoch": summary["seconds_per_epoch"], "seconds": summary["seconds"],
                           "failed_runs": summary["failed_runs"],
                           **{f"f1.{c}": v for c, v in summary["per_class_f1"].items()}})
        self.client.log_dict(run_id, summary, "summary.json")
        if summary["classes"]:
            with tempfile.TemporaryDirectory() as tmp:
                png = confusion_matrix_png(summary["confusion_matrix"], summary["classes"],
                                           Path(tmp) / "confusion_matrix.png", title="Test folds pooled")
                self.client.log_artifact(run_id, str(png))
        self.client.set_terminated(run_id, "FAILED" if summary["failed_runs"] else "FINISHED")

    def finish(self, summary: dict, report_text: str, failed: bool) -> None:
        assert self.parent_id is not None
        metrics = {f"{name}.macro_f1_mean": v["macro_f1_mean"] for name, v in summary["variants"].items()}
        metrics |= {f"{name}.paired_diff": v["macro_f1_diff_mean"] for name, v in summary["paired"].items()}
        self._log(self.parent_id, metrics)
        self.client.log_dict(self.parent_id, summary, "summary.json")
        self.client.log_text(self.parent_id, report_text, "report.txt")
        self.client.set_terminated(self.parent_id, "FAILED" if failed else "FINISHED")
