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

from har_assets.orchestration.dagster_internals import AssetCheckExecutionRecordStatus, PartitionKeyFilter
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


def failed_latest(instance: dg.DagsterInstance, partitions: Sequence[str],
                  keys: Sequence[dg.AssetCheckKey]) -> list[tuple[str, dg.AssetCheckKey]]:
    """(participant, check) of each of these checks whose latest evaluation for the participant failed; one query."""
    if not keys or not partitions:
        return []
    infos = instance.event_log_storage.get_asset_check_partition_info(list(keys), partition_keys=list(partitions))
    return [(info.partition_key, info.check_key) for info in infos
            if info.latest_execution_status == AssetCheckExecutionRecordStatus.FAILED and info.partition_key]


def failing_checks(instance: dg.DagsterInstance, partitions: Sequence[str],
                   keys: Sequence[dg.AssetCheckKey]) -> dict[str, list[str]]:
    """Participant -> 'asset.check' of each check (blocking or not) whose latest evaluation failed; one query."""
    found: dict[str, list[str]] = {}
    for pid, key in failed_latest(instance, partitions, keys):
        found.setdefault(pid, []).append(f"{key.asset_key.to_user_string()}.{key.name}")
    return {pid: sorted(names) for pid, names in found.items()}


def blocking_check_keys(assets: Iterable[str]) -> list[dg.AssetCheckKey]:
    return check_keys({asset: {name: spec for name, spec in PREPROCESSING_CHECKS[asset].items() if spec[1]}
                       for asset in assets})


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
    failed: dict[str, list[FailedCheck]] = {}
    for pid, key in failed_latest(instance, partitions, blocking_check_keys(assets)):
        records = instance.event_log_storage.get_asset_check_execution_history(
            key, limit=1, partition_filter=PartitionKeyFilter(key=pid))
        evaluation = records[0].evaluation if records else None
        if evaluation is not None:
            failed.setdefault(pid, []).append(failed_check(pid, evaluation))
    return {pid: sorted(found, key=lambda f: (f.asset, f.check)) for pid, found in sorted(failed.items())}
