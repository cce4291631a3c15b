"""Run workers that die are noticed: the run launcher of the local and compose instances.

Dagster's `DefaultRunLauncher` starts each run as a subprocess of the code server. The code server
marks a run failed when that subprocess dies while the server lives, but a run whose code server
went with it (the server killed, `docker compose restart code`) stays STARTED forever: the default
launcher has no health check, so the daemon's run monitoring cannot tell. This launcher adds one:
it asks the run's code server whether it still executes the run (the question `terminate` asks
before cancelling). A server that answers "no" means the worker is gone and monitoring marks the
run failed, frees its queue slot and pool slots, and the instance's run retries start it again; a
server that does not answer (restarting) means "cannot tell yet", so a live run is never failed
for a network blip.

Dagster's launcher health API and its gRPC request type are not public in 1.13 (`dagster_internals`).
"""

from __future__ import annotations

import dagster as dg

from har_assets.orchestration.dagster_internals import (
    CanCancelExecutionRequest,
    CanCancelExecutionResult,
    CheckRunHealthResult,
    WorkerStatus,
)

HEALTH_TIMEOUT_S = 10


class CodeServerRunLauncher(dg.DefaultRunLauncher):
    """`DefaultRunLauncher` whose run workers' health the daemon's run monitoring can check."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        client = self._get_grpc_client_for_termination(run.run_id)
        if client is None:  # finished meanwhile, or launched without a code server
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "the run names no code server")
        try:
            reply = client.can_cancel_execution(CanCancelExecutionRequest(run_id=run.run_id),
                                                timeout=HEALTH_TIMEOUT_S)
        except Exception as exc:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"code server not answering ({type(exc).__name__})")
        if dg.deserialize_value(reply, CanCancelExecutionResult).can_cancel:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, "the code server no longer executes this run: its "
                                    "worker process died (killed, out of memory, or the server restarted)")
