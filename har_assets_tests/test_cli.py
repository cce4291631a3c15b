"""The `har` console script: demo data and the headless pipeline, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from har_assets.cli import local_instance_yaml, main, prepare_home
from har_assets.home import HarHome
from har_assets_tests.rawfiles import write_participant

pytestmark = pytest.mark.slow

HAR = [sys.executable, "-m", "har_assets.cli"]


def test_demo_data_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo-data", "--participants", "2", "--out", str(tmp_path), "--minutes", "1", "--format", "csv",
                 "--unlabeled", "1"]) == 0
    assert "wrote 2 participants" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "p001").iterdir()) == ["accelerometer.csv", "gyroscope.csv",
                                                                     "labels.csv"]
    assert not (tmp_path / "p002" / "labels.csv").exists()
    with pytest.raises(FileExistsError, match="p001"):
        main(["demo-data", "--participants", "1", "--out", str(tmp_path), "--minutes", "1"])


def test_local_instance_is_written_upgraded_and_opens(tmp_path: Path) -> None:
    home = HarHome(tmp_path / "home")
    yaml = home.dagster_home / "dagster.yaml"
    yaml.parent.mkdir(parents=True)
    yaml.write_text(local_instance_yaml().splitlines()[0] + "\nconcurrency:\n  runs:\n    max_concurrent_runs: 2\n")
    prepare_home(home, demo_participants=0, demo_minutes=1, seed=0)
    assert yaml.read_text() == local_instance_yaml()  # an older file of ours is upgraded
    with dg.DagsterInstance.from_config(str(home.dagster_home)) as instance:
        assert instance.run_coordinator.dequeue_interval_seconds == 1
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 2
    yaml.write_text("# my own instance\ntelemetry:\n  enabled: false\n")
    prepare_home(home, demo_participants=0, demo_minutes=1, seed=0)
    assert yaml.read_text().startswith("# my own instance")  # a user's own is left alone


def test_pipeline_json_then_up_to_date_then_changed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    raw = home / "raw"
    # 6 minutes: enough bouts that the two participants share classes (the test one must have a class training knows)
    assert main(["demo-data", "--participants", "2", "--out", str(raw), "--minutes", "6", "--format", "csv"]) == 0
    (raw / "bad id!").mkdir()
    (home / "training.json").write_text(json.dumps({"train": {"epochs": 4}}))  # the home's own training settings
    env = {**os.environ, "HAR_HOME": str(home)}
    first = subprocess.run([*HAR, "pipeline", "--json"], env=env, capture_output=True, text=True, timeout=600)
    summary = json.loads(first.stdout)
    assert first.returncode == 1, "an invalid folder must make the run exit non-zero"
    assert "invalid participant id" in summary["failed"]["bad id!"]
    assert summary["materialized"] == 2
    p1 = summary["participants"]["p001"]
    assert p1["status"] == "materialized" and p1["segments"] >= 2 and p1["accelerometer_samples"] > 10_000
    assert p1["windows"] >= sum(p1["windows_per_class"].values()) > 0
    assert (home / "dagster_home" / "dagster.yaml").is_file()
    assert (home / "assets" / "windows" / "p002.npz").is_file()
    assert summary["model"]["epochs_run"] == 4

    (raw / "bad id!").rmdir()
    second = json.loads(subprocess.run([*HAR, "pipeline", "--json"], env=env, capture_output=True, text=True,
                                       timeout=600, check=True).stdout)
    assert second["up_to_date"] == 2 and second["materialized"] == 0

    labels = raw / "p002" / "labels.csv"
    labels.write_text("".join(labels.read_text().splitlines(keepends=True)[:-1]))  # drop the last bout
    third = json.loads(subprocess.run([*HAR, "pipeline", "--json"], env=env, capture_output=True, text=True,
                                      timeout=600, check=True).stdout)
    assert third["participants"]["p002"] == {**third["participants"]["p002"], "status": "materialized",
                                             "why": "raw files changed"}
    assert third["participants"]["p001"]["status"] == "up-to-date"


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("training.json", '{"train": {"epochs": 0}}', "train.epochs: Input should be greater than or equal to 1"),
    ("training.json", '{"trian": {}}', "trian: Extra inputs are not permitted"),
    ("preprocess.json", '{"window_size": "big"}', "window_size: Input should be a valid integer"),
    ("preprocess.json", "{not json", "(file): Invalid JSON"),
])
def test_a_bad_config_file_is_named_with_its_field(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   name: str, content: str, problem: str) -> None:
    home = tmp_path / "home"
    (home / "raw").mkdir(parents=True)
    (home / name).write_text(content)
    assert main(["pipeline", "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert f"har pipeline: {home / name}: {problem}" in err
    assert not list((home / "raw").iterdir()) and not (home / "dagster_home").exists()  # stopped before writing


def in_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal (as a person's shell has it): (exit code, stdout, stderr)."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 40 rows, 120 columns
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    err = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closed: the process is done with it
            break
        if not chunk:
            break
        err += chunk
    out = proc.stdout.read().decode()
    os.close(master)
    return proc.wait(timeout=600), out, err.decode(errors="replace")


def test_progress_on_a_terminal_and_silence_elsewhere(tmp_path: Path) -> None:
    env = {**os.environ, "HAR_HOME": str(tmp_path / "home")}
    code, out, err = in_terminal([*HAR, "demo-data", "--participants", "3", "--out", str(tmp_path / "demo"),
                                  "--minutes", "1", "--format", "csv"], env)
    assert code == 0 and "wrote 3 participants" in out
    assert "writing demo participants" in err and "3/3" in err and "p003" in err
    piped = subprocess.run([*HAR, "demo-data", "--participants", "2", "--out", str(tmp_path / "more"), "--minutes",
                            "1"], env=env, capture_output=True, text=True, timeout=600)
    assert piped.returncode == 0 and "writing demo participants" not in piped.stderr

    raw = tmp_path / "home" / "raw"
    for pid in ("u1", "u2"):  # unlabelled: preprocessed and summarised, no model to train
        (write_participant(raw / pid, seconds=12) / "labels.csv").unlink()
    code, out, err = in_terminal([*HAR, "pipeline"], env)
    assert code == 0, err[-2000:]
    assert "preprocessing (2 stale)" in err and "2/2" in err and "cohort_overview" in err
    code, out, err = in_terminal([*HAR, "pipeline", "--json"], env)
    assert code == 0 and json.loads(out)["up_to_date"] == 2
    assert "preprocessing (" not in err and "cohort overview" not in err  # --json: machine-readable, no bars


def test_demo_data_only_into_a_raw_folder_the_platform_creates(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    fresh = HarHome(tmp_path / "fresh")
    assert prepare_home(fresh, demo_participants=2, demo_minutes=0.5, seed=0) == ["p001", "p002"]
    assert sorted(p.name for p in fresh.raw.iterdir()) == ["p001", "p002"]
    assert not list(fresh.root.glob(".raw-demo-*"))  # written beside, renamed into place

    users = HarHome(tmp_path / "users")
    users.raw.mkdir(parents=True)  # the user's (empty) raw root: never written into
    assert prepare_home(users, demo_participants=2, demo_minutes=0.5, seed=0) == []
    assert list(users.raw.iterdir()) == []
    assert f"no participant folders in {users.raw}" in capsys.readouterr().err
