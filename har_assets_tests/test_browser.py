"""The UI flows users rely on, in a real browser: headless Chromium (the Debian package) driven by
Playwright, against the real services on 127.0.0.1.

A temporary HAR_HOME gets four small labelled participants; the headless pipeline (`run_pipeline`,
what `har pipeline` runs) preprocesses them and trains, evaluates and registers a model with a short
training config. Then `har dev` (Dagster webserver + daemon, sensors deployed stopped so the UI is
the only actor), `mlflow server` on the home's MLflow store and `har serve` start, and the tests
click through the pages. The browser may only talk to 127.0.0.1: every other request is aborted
and reported. Screenshots go to `$HAR_TEST_ARTIFACTS/browser/screenshots/` (else a pytest
temporary folder).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from har_assets_tests.stack import (
    BIN,
    LOOPBACK,
    Processes,
    artifacts_dir,
    base_env,
    client,
    free_port,
    graphql,
    http_ok,
    processes,
    wait_until,
)

CHROMIUM = Path(os.environ.get("HAR_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (install the Debian package: apt-get install chromium)",
                allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api",
                                     reason="playwright is not installed (pip install -e '.[dev]')")

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

PARTICIPANTS = {"p01": 1.0, "p02": 0.8, "p03": 1.2, "p04": 0.9}  # id -> motion gain
NEW = "p05"  # added and materialized from the UI
UI_TIMEOUT_MS = 60_000

# The headless pipeline on the test's home, in its own process (its MLflow and Dagster state stay there).
PREPARE = """
import json, sys
from pathlib import Path
import dagster as dg
from har_assets.cli import prepare_home
from har_assets.home import HarHome
from har_assets.ml.hyperparams import TrainConfig
from har_assets.orchestration.training_resources import TrainingResource
from har_assets.pipeline_run import run_pipeline

home = HarHome(Path(sys.argv[1]))
prepare_home(home, demo_participants=0, demo_minutes=1, seed=0)  # the local instance config `har dev` uses
training = TrainingResource.from_configs(train=TrainConfig(epochs=4, patience=2))
with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
    summary = run_pipeline(home, instance, resources={"training": training})
print("SUMMARY " + json.dumps({"failed": summary["failed"], "model": summary["model"]}))
"""


def _has_serve_command() -> bool:
    from har_assets.cli import build_parser

    parser = build_parser()
    return any("serve" in (getattr(a, "choices", None) or {}) for a in parser._actions)


@dataclass
class Ui:
    home: Path
    dagster: str
    mlflow: str
    api: str | None
    location: str
    procs: Processes
    shots: Path
    summary: dict
    blocked: list[str] = field(default_factory=list)

    def gql(self, query: str, variables: dict | None = None) -> dict:
        return graphql(f"{self.dagster}/graphql", query, variables)

    def asset_keys(self) -> dict[str, str]:
        nodes = self.gql("{ assetNodes { assetKey { path } groupName } }")["assetNodes"]
        return {"/".join(n["assetKey"]["path"]): n["groupName"] for n in nodes}


def _write_participant(raw: Path, pid: str, gain: float) -> None:
    from har_assets_tests.trainfiles import write_two_class_participant

    write_two_class_participant(raw / pid, seconds=60.0, gain=gain)


def _location(url: str) -> str | None:
    data = graphql(f"{url}/graphql", "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
                                     "locationOrLoadError { __typename ... on PythonError { message } } } } } }")
    for entry in data["workspaceOrError"]["locationEntries"]:
        error = entry["locationOrLoadError"]
        if error and error["__typename"] == "PythonError":
            raise AssertionError(f"code location {entry['name']} failed to load: {error['message']}")
        if entry["loadStatus"] == "LOADED" and error:
            return entry["name"]
    return None


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ui]:
    artifacts = artifacts_dir(tmp_path_factory, "browser")
    shots = artifacts / "screenshots"
    shots.mkdir(exist_ok=True)
    home = tmp_path_factory.mktemp("browser-home")
    for pid, gain in PARTICIPANTS.items():
        _write_participant(home / "raw", pid, gain)
    env = base_env(HAR_HOME=str(home), DAGSTER_HOME=str(home / "dagster_home"), HAR_AUTOSTART_SENSOR="0",
                   HAR_AUTOSTART_RETRAIN="0", HAR_AUTOSTART_SCORING="0")
    prepared = subprocess.run([sys.executable, "-c", PREPARE, str(home)], env=env, cwd=home, capture_output=True,
                              text=True, timeout=300)
    (artifacts / "prepare.log").write_text(prepared.stdout + prepared.stderr)
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    summary = json.loads(prepared.stdout.split("SUMMARY ", 1)[1])
    assert summary["failed"] == {}, summary
    ports = {name: free_port() for name in ("dagster", "mlflow", "api")}
    urls = {name: f"http://{LOOPBACK}:{port}" for name, port in ports.items()}
    with processes(artifacts) as procs:
        procs.start("har-dev", [str(BIN / "har"), "dev", "--home", str(home), "--host", LOOPBACK,
                                "--port", str(ports["dagster"])], env, cwd=home)
        procs.start("mlflow", [str(BIN / "mlflow"), "server", "--host", LOOPBACK, "--port", str(ports["mlflow"]),
                               "--workers", "1", "--backend-store-uri", f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
                               "--artifacts-destination", (home / "mlflow" / "artifacts").as_uri()], base_env(),
                    cwd=home)
        api = None
        if _has_serve_command():
            procs.start("har-serve", [str(BIN / "har"), "serve", "--home", str(home), "--host", LOOPBACK,
                                      "--port", str(ports["api"]), "--poll-seconds", "0", "--log-level", "warning"],
                        env, cwd=home)
            api = urls["api"]
        wait_until("the Dagster webserver", http_ok(f"{urls['dagster']}/server_info"), 180, procs)
        location = wait_until("the code location", lambda: _location(urls["dagster"]), 180, procs)
        wait_until("the MLflow server", http_ok(f"{urls['mlflow']}/health"), 120, procs)
        if api:
            wait_until("the API to load the champion", http_ok(f"{api}/ready"), 120, procs)
        yield Ui(home, urls["dagster"], urls["mlflow"], api, location, procs, shots, summary)


@pytest.fixture(scope="module")
def browser(ui: Ui) -> Iterator:
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, ui: Ui, request: pytest.FixtureRequest) -> Iterator:
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(UI_TIMEOUT_MS)
    # Dagster's one-time "join the community" dialog would cover the page
    context.add_init_script("window.localStorage.setItem('communityNux', JSON.stringify('1'))")
    ui.blocked.clear()

    def only_loopback(route) -> None:
        url = route.request.url
        if url.startswith((f"http://{LOOPBACK}:", "data:", "blob:")):
            route.continue_()
        else:
            ui.blocked.append(url)
            route.abort()

    context.route("**/*", only_loopback)
    page = context.new_page()
    try:
        yield page
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            _shot(page, ui, f"FAILED-{request.node.name}", check=False)
    finally:
        context.close()


def _shot(page, ui: Ui, name: str, check: bool = True) -> Path:
    path = ui.shots / f"{name}.png"
    page.screenshot(path=str(path))
    assert not check or path.stat().st_size > 10_000, f"screenshot {path} looks empty"
    return path


# ---------------------------------------------------------------------------------------------- Dagster


def test_asset_graph_page_shows_every_asset(page, ui: Ui) -> None:
    assets = ui.asset_keys()
    assert {"raw_recording", "fused_recording", "filtered_recording", "windows"} <= set(assets)
    groups = sorted(set(assets.values()))
    # the global lineage: every group box is drawn (zoomed out, long asset names are middle-truncated)
    page.goto(f"{ui.dagster}/asset-groups")
    page.get_by_role("button", name="Materialize all").wait_for()
    page.locator('[aria-label="settings"]').last.click()  # graph options
    page.get_by_role("menuitem", name="Expand all groups").click()
    page.keyboard.press("Escape")
    nodes = page.locator("svg foreignObject")
    for group in groups:
        nodes.get_by_text(group, exact=True).first.wait_for(state="visible")
    _shot(page, ui, "01-dagster-asset-graph")
    # each group's own graph is drawn large enough for full names: every asset is a node there
    for group in groups:
        page.goto(f"{ui.dagster}/locations/{ui.location}/asset-groups/{group}")
        page.get_by_role("button", name=re.compile("Materialize")).first.wait_for()  # "... all" for several assets
        for name in sorted(a for a, g in assets.items() if g == group):
            page.locator("svg foreignObject").get_by_text(name, exact=True).first.wait_for(state="visible")
        _shot(page, ui, f"01-dagster-asset-graph-{group}")
    assert not ui.blocked, ui.blocked


LAUNCHED = re.compile(r"Launched run ([0-9a-f]{8})")


def test_materialize_a_new_participant_partition_from_the_ui(page, ui: Ui) -> None:
    _write_participant(ui.home / "raw", NEW, 1.1)  # a new folder; the sensor is stopped, so the UI registers it
    assets = ui.asset_keys()
    preprocessing = sorted(a for a, g in assets.items() if g == "preprocessing")
    before = _partition_stats(ui, "windows")
    page.goto(f"{ui.dagster}/locations/{ui.location}/asset-groups/preprocessing")
    page.get_by_role("button", name="Materialize all").click()
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
    dialog.get_by_text(f"Launch runs to materialize {len(preprocessing)} assets").wait_for()
    dialog.get_by_text("Select a partition or create one").click()
    page.keyboard.type(NEW)
    page.get_by_role("menuitem").filter(has_text="Add partition").click()
    add = page.get_by_role("dialog").filter(has_text="Add a partition for participants")
    add.get_by_placeholder("name").fill(NEW)
    add.get_by_role("button", name="Save").click()
    add.wait_for(state="hidden")
    launch = dialog.get_by_role("button", name="Launch 1 run")
    try:
        launch.wait_for(timeout=10_000)  # the new partition is normally selected on save
    except playwright_api.TimeoutError:  # else pick it from the list, as a user would
        dialog.get_by_text("Select a partition or create one").click()
        page.keyboard.press("Control+A")  # the search box keeps what was typed before
        page.keyboard.type(NEW)
        page.get_by_role("menuitem").filter(has_text=re.compile(f"^{NEW}")).first.click()
        launch.wait_for()
    assert dialog.get_by_text(NEW, exact=True).count() >= 1
    _shot(page, ui, "02-dagster-launch-dialog")
    launch.click()
    toast = page.get_by_text(LAUNCHED).first
    toast.wait_for()
    prefix = LAUNCHED.search(toast.inner_text()).group(1)

    run = wait_until(f"the run of {NEW} to finish", lambda: _finished_run(ui, NEW), 240, ui.procs, interval_s=2.0)
    assert run["runId"].startswith(prefix), (run, prefix)
    assert run["status"] == "SUCCESS", (run, ui.procs.tails())
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags.get("dagster/from_ui") == "true" and tags.get("dagster/partition") == NEW, tags
    assert sorted(k["path"][-1] for k in run["assetSelection"]) == preprocessing
    after = _partition_stats(ui, "windows")
    assert after["numPartitions"] == before["numPartitions"] + 1
    assert after["numMaterialized"] == before["numMaterialized"] + 1

    page.goto(f"{ui.dagster}/runs/{run['runId']}")
    page.get_by_text("Success", exact=True).first.wait_for()
    page.get_by_text(f"partition: {NEW}", exact=True).first.wait_for()
    _shot(page, ui, "03-dagster-run-succeeded")
    assert not ui.blocked, ui.blocked


def _partition_stats(ui: Ui, asset: str) -> dict:
    node = ui.gql("query($k: [String!]!) { assetNodeOrError(assetKey: {path: $k}) { ... on AssetNode { "
                  "partitionStats { numMaterialized numPartitions numFailed } } } }", {"k": [asset]})
    return node["assetNodeOrError"]["partitionStats"]


def _finished_run(ui: Ui, partition: str) -> dict | None:
    runs = ui.gql("query($f: RunsFilter) { runsOrError(filter: $f) { ... on Runs { results { runId status "
                  "tags { key value } assetSelection { path } } } } }",
                  {"f": {"tags": [{"key": "dagster/partition", "value": partition}]}})["runsOrError"]["results"]
    done = [r for r in runs if r["status"] in {"SUCCESS", "FAILURE", "CANCELED"}]
    return done[0] if done else None


def _latest_metadata(ui: Ui, asset: str, partition: str | None = None) -> dict:
    data = ui.gql("query($k: [String!]!, $p: [String!]) { assetOrError(assetKey: {path: $k}) { ... on Asset { "
                  "assetMaterializations(partitions: $p, limit: 1) { metadataEntries { label "
                  "... on IntMetadataEntry { intValue } ... on FloatMetadataEntry { floatValue } "
                  "... on TextMetadataEntry { text } ... on PathMetadataEntry { path } } } } } }",
                  {"k": [asset], "p": [partition] if partition else None})
    (mat,) = data["assetOrError"]["assetMaterializations"]
    return {e["label"]: next((v for k, v in e.items() if k != "label"), None) for e in mat["metadataEntries"]}


def test_asset_page_shows_the_partition_metadata(page, ui: Ui) -> None:
    partition = "p02"  # not the latest materialization: the page must show this partition's own metadata
    meta = _latest_metadata(ui, "windows", partition)
    assert meta["windows"] > 0 and meta["path"].endswith(f"/{partition}.npz")
    page.goto(f"{ui.dagster}/assets/windows?view=partitions&partition={partition}")
    table = page.locator("table").filter(has_text="labelled_windows")
    table.wait_for()
    for label in ("windows", "labelled_windows", "unlabelled_windows", "windows_per_class", "window_shape", "path"):
        table.get_by_text(label, exact=True).first.wait_for()
    table.get_by_text(f"windows/{partition}.npz").first.wait_for()  # this partition's file, not another's
    for label in ("windows", "labelled_windows"):
        row = table.locator("tr").filter(has=page.get_by_text(label, exact=True)).first
        assert str(meta[label]) in row.inner_text(), (label, row.inner_text())
    table.get_by_text('"hand_tapping"').first.wait_for()  # the per-class counts (JSON metadata)
    _shot(page, ui, "04-dagster-asset-metadata")


def test_model_evaluation_page_shows_the_confusion_matrix(page, ui: Ui) -> None:
    if "model_evaluation" not in ui.asset_keys():
        pytest.skip("the code location has no model_evaluation asset")
    meta = _latest_metadata(ui, "model_evaluation")
    page.goto(f"{ui.dagster}/assets/model_evaluation")
    table = page.locator("table").filter(has_text="confusion_matrix")
    for label in ("accuracy", "macro_f1", "per_class", "versus_baselines"):
        table.get_by_text(label, exact=True).first.wait_for()
    _shot(page, ui, "05-dagster-model-evaluation")
    width, height = _open_image(page, table, "confusion_matrix")
    assert width > 200 and height > 200, (width, height)  # decoded: a real picture, not a broken icon
    assert meta["mlflow_run_id"], meta
    _shot(page, ui, "06-dagster-confusion-matrix")
    assert not ui.blocked, ui.blocked


def _open_image(page, table, label: str) -> tuple[int, int]:
    """Open a markdown metadata entry's dialog and wait until its PNG has really been decoded: (width, height).

    The asset page re-renders when a new event arrives (the daemon keeps working), which can close an open
    dialog: the entry is then opened again, up to three times, before the picture counts as missing.
    """
    row = table.locator("tr").filter(has=page.get_by_text(label, exact=True)).first
    dialog = page.get_by_role("dialog")
    decoded = """() => { const i = document.querySelector('[role=dialog] img');
        return i && i.complete && i.naturalWidth > 0 ? [i.src.slice(0, 22), i.naturalWidth, i.naturalHeight] : null }"""
    for _ in range(3):
        if not dialog.count():
            row.get_by_text("[Show Markdown]").click()
        try:
            src, width, height = page.wait_for_function(decoded, timeout=20_000).json_value()
        except playwright_api.TimeoutError:
            continue
        assert src == "data:image/png;base64,", (label, src)
        return width, height
    raise AssertionError(f"{label}: no decoded picture in its dialog after three tries")


def _close_dialog(page) -> None:
    page.keyboard.press("Escape")
    page.get_by_role("dialog").wait_for(state="detached")


def test_a_participants_recording_is_pictured(page, ui: Ui) -> None:
    """fused_recording's partition page: the six channels, labels, gaps and segments as one picture."""
    page.goto(f"{ui.dagster}/assets/fused_recording?view=partitions&partition=p01")
    table = page.locator("table").filter(has_text="plot_bytes")
    table.wait_for()
    width, height = _open_image(page, table, "plot")
    assert width >= 600 and height >= 300, (width, height)
    _shot(page, ui, "07-dagster-recording-plot")
    _close_dialog(page)
    page.goto(f"{ui.dagster}/assets/participant_predictions?view=partitions&partition=p01")
    table = page.locator("table").filter(has_text="timeline_bytes")
    table.wait_for()
    width, _ = _open_image(page, table, "timeline")
    assert width >= 600
    _shot(page, ui, "08-dagster-predicted-and-true-timeline")
    _close_dialog(page)
    # how far to trust it: the label-free estimate, the flags and the label request, on the same page
    meta = _latest_metadata(ui, "participant_predictions", "p01")
    for label in ("estimated_accuracy", "estimated_accuracy_band", "flagged", "flag_reasons", "ood_flag",
                  "label_request", "label_request_minutes"):
        table.get_by_text(label, exact=True).first.wait_for()
    row = table.locator("tr").filter(has=page.get_by_text("estimated_accuracy", exact=True)).first
    assert f"{meta['estimated_accuracy']:.4g}"[:4] in row.inner_text(), (meta["estimated_accuracy"], row.inner_text())
    row.scroll_into_view_if_needed()
    _shot(page, ui, "12-dagster-participant-estimate-and-flags")
    table.locator("tr").filter(has=page.get_by_text("label_request", exact=True)).first.scroll_into_view_if_needed()
    _shot(page, ui, "13-dagster-participant-label-request")
    assert not ui.blocked, ui.blocked


def test_the_cohort_overview_compares_participants(page, ui: Ui) -> None:
    page.goto(f"{ui.dagster}/assets/cohort_overview")
    table = page.locator("table").filter(has_text="channel_levels")
    table.wait_for()
    for label in ("participants", "participants_differing", "participants_flagged", "class_distribution",
                  "channel_correlations"):
        table.get_by_text(label, exact=True).first.wait_for()
    _shot(page, ui, "09-dagster-cohort-overview")
    for label, shot in (("channel_levels", "10"), ("class_distribution", "11")):
        width, height = _open_image(page, table, label)
        assert width >= 300 and height >= 150, (label, width, height)
        _shot(page, ui, f"{shot}-dagster-cohort-{label.replace('_', '-')}")
        _close_dialog(page)
    assert not ui.blocked, ui.blocked


# ----------------------------------------------------------------------------------------------- MLflow


def test_mlflow_ui_shows_the_run_and_the_champion_alias(page, ui: Ui) -> None:
    model = ui.summary["model"]
    if model.get("status") == "missing" or "registered_model" not in ui.asset_keys():
        pytest.skip("no registered model in this code location")
    name, version, run_id = model["registered_model"], str(model["version"]), model["mlflow_run_id"]
    with client() as c:
        alias = c.get(f"{ui.mlflow}/api/2.0/mlflow/registered-models/alias",
                      params={"name": name, "alias": "champion"}).json()["model_version"]
        run = c.get(f"{ui.mlflow}/api/2.0/mlflow/runs/get", params={"run_id": run_id}).json()["run"]
    assert alias["version"] == version and alias["run_id"] == run_id

    page.goto(f"{ui.mlflow}/#/models/{name}")
    row = page.locator("tr, [role=row]").filter(has_text=f"Version {version}")
    row.get_by_text("champion").first.wait_for()
    _shot(page, ui, "07-mlflow-registered-model")

    page.goto(f"{ui.mlflow}/#/experiments/{run['info']['experiment_id']}/runs/{run_id}")
    page.get_by_text(run["info"]["run_name"]).first.wait_for()
    page.get_by_text("Finished").first.wait_for()
    page.get_by_text("test_macro_f1").first.wait_for()
    page.get_by_text(f"v{version}").first.wait_for()  # the run's registered model version
    _shot(page, ui, "08-mlflow-run")


# -------------------------------------------------------------------------------------------------- API


def test_api_docs_page_renders(page, ui: Ui) -> None:
    if ui.api is None:
        pytest.skip("this version of har has no `serve` command")
    page.goto(f"{ui.api}/docs")
    try:
        page.locator(".swagger-ui .opblock").filter(has_text="/predict").first.wait_for(timeout=30_000)
    except playwright_api.TimeoutError:
        _shot(page, ui, "09-api-docs-not-rendered", check=False)
        raise AssertionError(f"/docs did not render the Swagger UI; requests it made outside 127.0.0.1 (blocked): "
                             f"{ui.blocked or 'none'}") from None
    for path in ("/predict", "/health", "/ready", "/model"):
        page.locator(".opblock-summary-path").get_by_text(path, exact=True).first.wait_for()
    page.get_by_text("HAR inference API").first.wait_for()
    _shot(page, ui, "09-api-docs")
    assert not ui.blocked, f"/docs fetched resources from outside 127.0.0.1: {ui.blocked}"
