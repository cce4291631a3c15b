"""One preprocessing step over one participant or a batch of them, with per-participant results.

A backfill runs `PARTICIPANTS_PER_RUN` participants per run (`BackfillPolicy.multi_run`): each run
pays its process start and imports once for the batch instead of once per participant. Sensor
runs and "Materialize" of one partition still cover one participant. Either way every participant
gets its own metadata and check results (partitioned checks), and every participant in a batch is
computed before anything is stored. A batch is all or nothing: if one participant raises a data
error or fails a blocking check, the step fails naming each such participant and nothing of the
batch is stored; `isolate_failed_batches` then re-runs its participants one per run, so the good
ones materialize and the bad one fails exactly as in a run of its own (its raw_recording stored
with the failed check, or its data error).

What a batch cannot keep: Dagster gives one data version to every partition of a step, so a batch
stores no per-participant data version; raw_recording's `raw_fingerprint` metadata carries the raw
files' content hash in both cases.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import dagster as dg

from har_assets.orchestration.partitions import participants
from har_assets.orchestration.retries import TRANSIENT_RETRY
from har_assets.signal.checks import CheckOutcome

PARTICIPANTS_PER_RUN = 25
OneOrBatch = Any  # an input: one participant's value, or {participant: value} for a batch (see by_participant)

T = TypeVar("T")


def participant_asset(**kwargs: Any) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """`dg.asset` partitioned by participant, backfilled PARTICIPANTS_PER_RUN participants per run."""
    def decorate(fn: Callable[..., Any]) -> dg.AssetsDefinition:
        with warnings.catch_warnings():  # backfill_policy is a beta parameter: it would warn in every run's log
            warnings.simplefilter("ignore", dg.BetaWarning)
            policy = dg.BackfillPolicy.multi_run(max_partitions_per_run=PARTICIPANTS_PER_RUN)
            return dg.asset(partitions_def=participants, backfill_policy=policy, retry_policy=TRANSIENT_RETRY,
                            **kwargs)(fn)
    return decorate


@dataclass
class StageResult:
    """One participant's output of a stage: the value to store, its metadata and check outcomes."""

    value: Any
    metadata: dict[str, Any]
    outcomes: list[CheckOutcome] = field(default_factory=list)
    data_version: str | None = None


def by_participant(context: dg.AssetExecutionContext, upstream: T | Mapping[str, T]) -> dict[str, T]:
    """The upstream value of each participant of the step (the IO manager gives a dict for a batch)."""
    keys = context.partition_keys
    if len(keys) == 1:
        return {keys[0]: upstream}  # type: ignore[dict-item]
    assert isinstance(upstream, Mapping), f"a batch of {len(keys)} participants expects a dict of inputs"
    return {pid: upstream[pid] for pid in keys}


def _evaluation(asset: dg.AssetKey, pid: str, outcome: CheckOutcome,
                target: dg.EventLogRecord | None) -> dg.AssetCheckEvaluation:
    from har_assets.orchestration.dagster_internals import AssetCheckEvaluationTargetMaterializationData

    return dg.AssetCheckEvaluation(
        asset_key=asset, check_name=outcome.name, passed=outcome.passed, partition=pid, blocking=outcome.blocking,
        metadata={"detail": outcome.detail, **outcome.values},
        severity=dg.AssetCheckSeverity.ERROR if outcome.blocking else dg.AssetCheckSeverity.WARN,
        target_materialization_data=AssetCheckEvaluationTargetMaterializationData(
            storage_id=target.storage_id, run_id=target.run_id, timestamp=target.timestamp) if target else None,
    )


def _check_result(outcome: CheckOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=outcome.name, passed=outcome.passed, metadata={"detail": outcome.detail, **outcome.values},
        severity=dg.AssetCheckSeverity.ERROR if outcome.blocking else dg.AssetCheckSeverity.WARN,
    )


def _fail_batch(problems: dict[str, str]) -> dg.Failure:
    lines = "; ".join(f"{pid}: {why}" for pid, why in sorted(problems.items()))
    return dg.Failure(
        description=f"{len(problems)} participant(s) of this batch failed, nothing of the batch was stored "
                    f"(each is re-run on its own): {lines}",
        metadata={"failed_participants": sorted(problems), "problems": dg.MetadataValue.json(problems)},
        allow_retries=False)


def run_stage(context: dg.AssetExecutionContext, inputs: Mapping[str, Any],
              compute: Callable[[str, Any], StageResult]) -> Iterator[dg.Output | dg.AssetCheckResult
                                                                        | dg.AssetCheckEvaluation]:
    """Compute every participant of the step, then store and report them (see the module docstring)."""
    results: dict[str, StageResult] = {}
    problems: dict[str, str] = {}
    single = len(inputs) == 1
    for pid, upstream in inputs.items():
        try:
            results[pid] = compute(pid, upstream)
        except dg.Failure as exc:
            if single:
                raise
            problems[pid] = exc.description or type(exc).__name__
    for pid, result in results.items():
        failed = [o for o in result.outcomes if o.blocking and not o.passed]
        if failed and not single:
            problems[pid] = "; ".join(f"blocking check {context.asset_key.to_user_string()}.{o.name} failed: "
                                      f"{o.detail}" for o in failed)
    if problems:
        raise _fail_batch(problems)
    for pid, result in results.items():
        context.add_asset_metadata(result.metadata, partition_key=pid)
    if single:
        [(pid, result)] = results.items()
        version = dg.DataVersion(result.data_version) if result.data_version else None
        yield dg.Output(result.value, data_version=version)
        yield from (_check_result(o) for o in result.outcomes)
        return
    yield dg.Output({pid: r.value for pid, r in results.items()})
    targets = _latest_materializations(context, list(results))
    for pid, result in results.items():
        yield from (_evaluation(context.asset_key, pid, o, targets.get(pid)) for o in result.outcomes)
    for key in context.selected_asset_check_keys:  # the checks' outputs, as AssetCheckResult would set them
        yield dg.Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(key))


def _latest_materializations(context: dg.AssetExecutionContext, pids: list[str]) -> dict[str, dg.EventLogRecord]:
    """The materialization of each participant this run just stored: what its check evaluations target."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=pids), limit=len(pids)).records
    latest: dict[str, dg.EventLogRecord] = {}
    for record in records:  # newest first
        if record.run_id == context.run.run_id and record.partition_key not in latest:
            latest[record.partition_key] = record
    return latest
