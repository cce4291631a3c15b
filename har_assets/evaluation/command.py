"""Run a cross-validated comparison of variants on a cohort, with a progress bar and MLflow tracking."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tqdm import tqdm

from har_assets.evaluation.cohort import Cohort, CohortError
from har_assets.evaluation.report import report_text
from har_assets.evaluation.tracking import EvaluationTracker
from har_assets.ml.crossval import FoldResult, participant_folds, run_fold
from har_assets.ml.cv_summary import summarize, summarize_variant
from har_assets.ml.variants import Variant


def _failed(variant: Variant, seed: int, folds: list, error: str) -> list[FoldResult]:
    return [FoldResult(variant=variant.name, fold=f.index, seed=seed, test=f.test, seconds=0.0, error=error)
            for f in folds]


def run_evaluation(cohort: Cohort, variants: list[Variant], folds: int, seeds: list[int],
                   tracker: EvaluationTracker, progress: bool = False) -> dict:
    """Cross-validate every variant on the same folds; returns {info, summary, report, failed, mlflow}.

    Raises CohortError before anything is trained if the cohort cannot be read or split into folds.
    """
    import torch

    first = variants[0].config
    cohort.recordings(first.preprocess)  # every participant readable, before any training
    plans = {v.name: participant_folds(cohort.participants, folds, v.config.split.validation_share,
                                       v.config.split.seed) for v in variants}
    info = {"raw": str(cohort.root), "participants": len(cohort.participants),
            "participant_ids": cohort.participants, "unlabelled_left_out": cohort.unlabelled, "folds": folds,
            "seeds": list(seeds), "variants": {v.name: v.overrides for v in variants},
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}
    tracker.start(f"evaluate {cohort.root.name}: {', '.join(v.name for v in variants)}"[:250],
                  {"raw": str(cohort.root), "participants": ",".join(cohort.participants), "folds": str(folds),
                   "seeds": ",".join(map(str, seeds)), "variants": " | ".join(v.name for v in variants)})
    results: dict[str, list[FoldResult]] = {}
    bar = tqdm(total=len(variants) * len(seeds) * folds, unit="fold", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)
    t0 = time.perf_counter()
    try:
        for variant in variants:
            rows = results.setdefault(variant.name, [])
            run_id = tracker.start_variant(variant)
            try:
                windows = cohort.windows(variant.config.preprocess)
            except CohortError as exc:
                windows, error = None, f"CohortError: {exc}"
            for seed in seeds:
                cfg = variant.config.model_copy(update={"train": variant.config.train.model_copy(
                    update={"seed": seed})})
                if windows is None:  # the variant's preprocessing fails for the cohort: every fold fails
                    for result in _failed(variant, seed, plans[variant.name], error):
                        rows.append(result)
                        tracker.log_fold(run_id, result)
                    bar.write(f"FAILED {variant.name} | seed {seed}: {error}", file=sys.stderr)
                    bar.update(len(plans[variant.name]))
                    continue
                for fold in plans[variant.name]:
                    where = f"{variant.name} | seed {seed} | fold {fold.index + 1}/{folds}"
                    bar.set_postfix_str(where, refresh=True)

                    def on_epoch(s, where=where, total=cfg.train.epochs) -> None:
                        bar.set_postfix_str(f"{where} | epoch {s.epoch}/{total}", refresh=True)

                    result = run_fold(windows, fold, cfg, variant.name, on_epoch)
                    rows.append(result)
                    tracker.log_fold(run_id, result)
                    if not result.ok:
                        bar.write(f"FAILED {where} (test {','.join(fold.test)}): {result.error}", file=sys.stderr)
                    bar.update()
            tracker.finish_variant(run_id, summarize_variant(rows))
    except BaseException:
        if tracker.parent_id:
            tracker.client.set_terminated(tracker.parent_id, "KILLED")
        raise
    finally:
        bar.close()
    summary = summarize(results)
    info["seconds"] = round(time.perf_counter() - t0, 1)
    failed = any(v["failed_runs"] for v in summary["variants"].values())
    text = report_text(info, summary)
    tracker.finish(summary, text, failed)
    return {"info": info, "summary": summary, "report": text, "failed": failed,
            "mlflow": {"experiment_id": tracker.experiment_id, "parent_run_id": tracker.parent_id}}


def open_cohort(raw: Path, participants: list[str] | None = None) -> Cohort:
    cohort = Cohort(raw, participants)
    if not cohort.participants:
        raise CohortError(f"no participant folder with a labels.csv under {raw}")
    return cohort
