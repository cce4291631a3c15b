"""The one module that imports Dagster's private API (`dagster._…`), each name for a need that Dagster 1.13
meets with no public API. Every other module imports these names from here (a guard test forbids private
Dagster imports anywhere else), so an upgrade that moves one breaks in one place.

- `AssetGraphSubset`: the argument of the public `RunRequest.for_asset_graph_subset`, with which a sensor asks
  for a backfill of the preprocessing assets over many participants (what "Materialize" in the UI creates).
- `AssetCheckEvaluationTargetMaterializationData`: ties a partitioned check evaluation, yielded for each
  participant of a batch step, to the materialization it checked.
- `PartitionKeyFilter`, `AssetCheckExecutionRecordStatus`: the one-participant filter and the status of the
  event log's asset-check queries, which the blocking-check gate reads across runs.
- `CheckRunHealthResult`, `WorkerStatus`, `CanCancelExecutionRequest`, `CanCancelExecutionResult`: the run
  launcher's health API and the code server's request for it (`run_health.CodeServerRunLauncher`, which also
  calls `DefaultRunLauncher._get_grpc_client_for_termination` for the run's code server).
- `all_daemons_live`: whether every daemon heartbeated within a tolerance, what `dagster-daemon liveness-check`
  asks; `har daemon`'s watchdog asks it in-process every few seconds instead of starting that command.
- The event log's SQL tables: `wipe_asset_partitions` raises NotImplementedError on SQL storages, so purging one
  participant's events from batch runs deletes those rows itself (`event_log_purge`).
"""

from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import (
    AssetCheckExecutionsTable,
    AssetEventTagsTable,
    AssetKeyTable,
    SqlEventLogStorageTable,
)
from dagster._daemon.controller import all_daemons_live
from dagster._grpc.types import CanCancelExecutionRequest, CanCancelExecutionResult

__all__ = [
    "AssetCheckEvaluationTargetMaterializationData",
    "AssetCheckExecutionRecordStatus",
    "AssetCheckExecutionsTable",
    "AssetEventTagsTable",
    "AssetGraphSubset",
    "AssetKeyTable",
    "CanCancelExecutionRequest",
    "CanCancelExecutionResult",
    "CheckRunHealthResult",
    "PartitionKeyFilter",
    "SqlEventLogStorageTable",
    "WorkerStatus",
    "all_daemons_live",
]
