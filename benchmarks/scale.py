"""How the platform's per-study costs grow with the number of registered participants.

    python benchmarks/scale.py                          # 100 and 1,000 participants × 0.5 min, CSV
    python benchmarks/scale.py --participants 100 --json

For each size: demo participants written and preprocessed in batches (in-process, as a backfill's
runs do) on a local SQLite instance, then, each measured on its own:

- sensor tick: `new_participant_sensor` over the settled raw root, the first tick (no cursor: hashes
  every file and asks who is stale) and a steady tick (nothing changed), with the cursor's size;
- training's input: `dataset_split` materialized (loads every participant's windows through the
  IO manager, asks the check gate about every participant, splits) — time and peak RSS of a fresh
  process;
- `cohort_overview` materialized (every participant's windows, checks and metadata, three pictures): the run's
  time, the asset's own compute time, and the pictures' size;
- the check gate alone: `failed_blocking_checks` over every participant;
- the staleness check that `har pipeline` and the sensor share: `stale_participants` over every participant
  (what a config change asks of the sensor);
- the UI: a real `dagster-webserver`; its GraphQL answers for the asset page of `windows`
  (partition statuses of every participant) and the asset graph's partition counts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

PREPARE = """
import sys, time, dagster as dg
from har_assets.settings import HarSettings
from har_assets.definitions import build_resources
from har_assets.home import HarHome
from har_assets.orchestration.participant_batches import PARTICIPANTS_PER_RUN
from har_assets.orchestration.preprocessing import PREPROCESSING_ASSETS
home = HarSettings().har_home()
ids = sorted(p.name for p in home.raw.iterdir())
with dg.DagsterInstance.get() as instance:
    instance.add_dynamic_partitions("participants", ids)
    for i in range(0, len(ids), PARTICIPANTS_PER_RUN):
        batch = ids[i:i + PARTICIPANTS_PER_RUN]
        result = dg.materialize(PREPROCESSING_ASSETS, instance=instance, resources=build_resources(home),
                                tags={"dagster/asset_partition_range_start": batch[0],
                                      "dagster/asset_partition_range_end": batch[-1]})
        assert result.success
"""

MEASURE = """
import json, resource, sys, time, warnings
warnings.filterwarnings("ignore")
import dagster as dg
from har_assets.definitions import build_resources
from har_assets.home import HarHome
home = HarSettings().har_home()
what = sys.argv[1]
out = {}
with dg.DagsterInstance.get() as instance:
    ids = instance.get_dynamic_partitions("participants")
    if what == "sensor":
        from har_assets.orchestration.sensors import study_sensors
        new_participant_sensor = study_sensors()[0]
        res = build_resources(home)
        resources = {k: res[k] for k in ("raw_store", "participant_removal", "preprocessing")}
        start = time.perf_counter()
        first = dg.build_sensor_context(instance=instance, resources=resources)
        new_participant_sensor(first)  # everyone preprocessed: hashes every file, asks who is stale, requests none
        out["first_tick_s"] = time.perf_counter() - start
        start = time.perf_counter()
        ctx = dg.build_sensor_context(instance=instance, cursor=first.cursor, resources=resources)
        steady = new_participant_sensor(ctx)
        out["steady_tick_s"] = time.perf_counter() - start
        out["cursor_kb"] = len(first.cursor) / 1024
        out["steady_result"] = type(steady).__name__
    elif what == "split":
        from har_assets.orchestration.training import dataset_split
        from har_assets.definitions import ASSETS
        start = time.perf_counter()
        assert dg.materialize(ASSETS, selection=[dataset_split], instance=instance,
                              resources=build_resources(home)).success
        out["dataset_split_s"] = time.perf_counter() - start
    elif what == "overview":
        from har_assets.orchestration.overview import cohort_overview
        from har_assets.definitions import ASSETS
        start = time.perf_counter()
        result = dg.materialize(ASSETS, selection=[cohort_overview], instance=instance,
                                resources=build_resources(home))
        out["cohort_overview_s"] = time.perf_counter() - start
        meta = result.asset_materializations_for_node("cohort_overview")[0].metadata
        out["cohort_overview_compute_s"] = meta["refresh_seconds"].value
        out["cohort_overview_plot_kb"] = meta["plot_bytes"].value / 1024
    elif what == "gate":
        from har_assets.orchestration.check_gate import failed_blocking_checks
        start = time.perf_counter()
        failed = failed_blocking_checks(instance, ids)
        out["check_gate_s"] = time.perf_counter() - start
        out["failed"] = len(failed)
    elif what == "uptodate":
        from har_assets.orchestration.freshness import stale_participants
        from har_assets.raw.scan import scan_raw_root
        cfg = build_resources(home)["preprocessing"].to_config()
        found = scan_raw_root(home.raw, None, settle_s=0.0).ready
        start = time.perf_counter()
        stale = stale_participants(instance, found, cfg)
        out["up_to_date_check_s"] = time.perf_counter() - start
        out["up_to_date"] = len(found) - len(stale)
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""

ASSET_PAGE = """query($key: [String!]!) { assetNodeOrError(assetKey: {path: $key}) { ... on AssetNode {
  partitionKeysByDimension { partitionKeys }
  assetPartitionStatuses { ... on DefaultPartitionStatuses { materializedPartitions failedPartitions } } } } }"""
GRAPH_COUNTS = "{ assetNodes { assetKey { path } partitionStats { numMaterialized numPartitions numFailed } } }"


def _run(code: str, env: dict, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def _gql(url: str, query: str, variables: dict | None = None) -> float:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as response:
        data = json.loads(response.read())
    elapsed = time.perf_counter() - start
    if "errors" in data:
        raise RuntimeError(data["errors"])
    return elapsed


def _ui(env: dict, home: Path) -> dict:
    port = 3000 + os.getpid() % 1000
    (home / "dagster_home" / "workspace.yaml").write_text(
        "load_from:\n  - python_module: har_assets.definitions\n")
    web = subprocess.Popen([str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w",
                            str(home / "dagster_home" / "workspace.yaml")], env=env, cwd=home,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        for _ in range(240):
            try:
                _gql(url, "{ version }")
                break
            except OSError:
                time.sleep(0.5)
        _gql(url, GRAPH_COUNTS)  # warm: the code location is loaded lazily
        page = min(_gql(url, ASSET_PAGE, {"key": ["windows"]}) for _ in range(3))
        graph = min(_gql(url, GRAPH_COUNTS) for _ in range(3))
    finally:
        web.terminate()
        web.wait(timeout=60)
    return {"ui_windows_asset_page_s": page, "ui_graph_partition_counts_s": graph}


def measure(participants: int, minutes: float, workdir: Path) -> dict:
    from har_assets.cli import local_instance_yaml
    from har_assets.demo import write_demo_dataset

    home = workdir / f"home-{participants}"
    (home / "dagster_home").mkdir(parents=True)
    (home / "dagster_home" / "dagster.yaml").write_text(local_instance_yaml())
    write_demo_dataset(home / "raw", participants, seed=5, minutes=minutes, fmt="csv")
    past = time.time() - 120
    for f in (home / "raw").rglob("*"):
        os.utime(f, (past, past))  # settled: the sensor hashes them on its first tick
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "MLFLOW_"))},
           "HAR_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"), "DAGSTER_DISABLE_TELEMETRY": "1"}
    start = time.perf_counter()
    _run(PREPARE, env)
    result = {"participants": participants, "minutes_each": minutes, "prepare_s": time.perf_counter() - start}
    for what in ("sensor", "split", "overview", "gate", "uptodate"):
        measured = _run(MEASURE, env, what)
        result |= {k: v for k, v in measured.items() if k != "peak_rss_mb"} | {f"{what}_peak_rss_mb":
                                                                               measured["peak_rss_mb"]}
    result |= _ui(env, home)
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}


def report(rows: list[dict]) -> str:
    keys = [k for k in rows[0] if k not in {"participants", "minutes_each", "steady_result"}]
    lines = ["| figure | " + " | ".join(f"{r['participants']} participants" for r in rows) + " |",
             "|---|" + "---|" * len(rows)]
    lines += [f"| {k} | " + " | ".join(str(r.get(k)) for r in rows) + " |" for k in keys]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--participants", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--minutes", type=float, default=0.5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="har-scale-"))
    try:
        rows = [measure(n, args.minutes, workdir) for n in args.participants]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(rows, indent=2) if args.json else report(rows))
    print(f"(benchmark process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
