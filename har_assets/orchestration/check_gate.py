"""Blocking checks across runs: a participant whose latest preprocessing failed a blocking check flows nowhere.

Dagster stops a failed blocking check's consumers only inside its own run. The asset's output is
stored before its checks run, so a later run (automation, the UI, `har pipeline`) would read it.
The check specs are partitioned by participant (so each participant has its own check status), the
automation conditions require `all_deps_blocking_checks_passed()`, and the consumers that read
every participant (training) or could be launched by hand (scoring) ask this module.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dagster as dg
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from har_assets.orchestration.partitions import participants
from har_assets.signal import checks

PREPROCESSING_CHECKS = {"raw_recording": checks.RAW_CHECKS, "fused_recording": checks.FUSED_CHECKS,
                        "filtered_recording": checks.FILTERED_CHECKS, "windows": checks.WINDOW_CHECKS}


def partitioned_specs(asset: str, names: dict[str, tuple[str, bool]]) -> list[dg.AssetCheckSpec]:
    """One spec per check (name -> (description, blocking)), evaluated per participant."""
    with warnings.catch_warnings():  # a partitions_def on a check spec is a preview feature of Dagster 1.13
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [dg.AssetCheckSpec(name, asset=asset, description=desc, blocking=blocking, partitions_def=participants)
                for name, (desc, blocking) in names.items()]


def check_keys(checks: dict[str, dict[str, tuple[str, bool]]]) -> list[dg.AssetCheckKey]:
    """Every check of these assets (asset -> {check: (description, blocking)})."""
    return [dg.AssetCheckKey(dg.AssetKey(asset), name) for asset, names in checks.items() for name in names]


def failing_checks(instance: dg.DagsterInstance, partitions: Sequence[str],
                   keys: Sequence[dg.AssetCheckKey]) -> dict[str, list[str]]:
    """Participant -> 'asset.check' of each check (blocking or not) whose latest evaluation failed; one query."""
    if not keys or not partitions:
        return {}
    found: dict[str, list[str]] = {}
    for info in instance.event_log_storage.get_asset_check_partition_info(list(keys), partition_keys=list(partitions)):
        if info.latest_execution_status == AssetCheckExecutionRecordStatus.FAILED and info.partition_key:
            found.setdefault(info.partition_key, []).append(
                f"{info.check_key.asset_key.to_user_string()}.{info.check_key.name}")
    return {pid: sorted(names) for pid, names in found.items()}


def blocking_check_keys(assets: Iterable[str]) -> list[dg.AssetCheckKey]:
    return [dg.AssetCheckKey(dg.AssetKey(asset), name) for asset in assets
            for name, (_, blocking) in PREPROCESSING_CHECKS[asset].items() if blocking]


@dataclass(frozen=True)
class FailedCheck:
    participant: str
    asset: str
    check: str
    detail: str
    values: dict[str, object]

    def describe(self) -> str:
        values = ", ".join(f"{k}={v}" for k, v in self.values.items())
        return (f"participant '{self.participant}': blocking check {self.asset}.{self.check} failed: {self.detail}"
                + (f" ({values})" if values else ""))


def failed_check(participant: str, evaluation: dg.AssetCheckEvaluation) -> FailedCheck:
    meta = {k: v.value for k, v in evaluation.metadata.items()}
    detail = str(meta.pop("detail", "no detail"))
    return FailedCheck(participant, evaluation.asset_key.to_user_string(), evaluation.check_name, detail, meta)


def failed_blocking_checks(instance: dg.DagsterInstance, partitions: Sequence[str],
                           assets: Iterable[str] = PREPROCESSING_CHECKS) -> dict[str, list[FailedCheck]]:
    """Participant -> the blocking checks whose latest evaluation failed, for the given participants.

    One query for the status of every (check, participant); details only for the failures."""
    keys = blocking_check_keys(assets)
    if not keys or not partitions:
        return {}
    infos = instance.event_log_storage.get_asset_check_partition_info(keys, partition_keys=list(partitions))
    failed: dict[str, list[FailedCheck]] = {}
    for info in infos:
        if info.latest_execution_status != AssetCheckExecutionRecordStatus.FAILED or info.partition_key is None:
            continue
        records = instance.event_log_storage.get_asset_check_execution_history(
            info.check_key, limit=1, partition_filter=PartitionKeyFilter(key=info.partition_key))
        evaluation = records[0].evaluation if records else None
        if evaluation is None:
            continue
        failed.setdefault(info.partition_key, []).append(failed_check(info.partition_key, evaluation))
    return {pid: sorted(found, key=lambda f: (f.asset, f.check)) for pid, found in sorted(failed.items())}
