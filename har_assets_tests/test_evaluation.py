"""`har evaluate` end to end: generated participants, real training, a real MLflow store, the CLI's output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient

from har_assets.cli import main
from har_assets_tests.rawfiles import T0, edit_cell, labels_table
from har_assets_tests.trainfiles import write_two_class_participant

pytestmark = pytest.mark.slow

PEOPLE = ["p01", "p02", "p03", "p04", "p05"]
FAST = ["--set", "model.conv_filters=4", "--set", "model.lstm_units=4", "--set", "train.epochs=2",
        "--set", "train.batch_size=16", "--set", "window_step=50", "--set", "train.num_threads=1",
        "--set", "train.device=cpu", "--set", "decoding.calibration_folds=0"]  # calibration: test_text_report


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = tmp_path_factory.mktemp("cohort") / "raw"
    for i, pid in enumerate(PEOPLE):
        write_two_class_participant(raw / pid, gain=0.8 + 0.1 * i)
    write_two_class_participant(raw / "u01", labelled=False)  # no labels: not part of an evaluation
    return raw


def evaluate(home: Path, raw: Path, *args: str, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = main(["evaluate", "--home", str(home), "--raw", str(raw), *FAST, *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def runs_by_kind(home: Path) -> tuple[MlflowClient, dict[str, list]]:
    client = MlflowClient(f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("har-evaluate")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    kinds: dict[str, list] = {}
    for run in runs:
        kinds.setdefault(run.data.tags["har.kind"], []).append(run)
    return client, kinds


def test_compare_two_variants_on_the_same_folds(tmp_path: Path, cohort: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = evaluate(tmp_path, cohort, "--folds", "5", "--compare", "gravity=remove,keep", "--json",
                              capsys=capsys)
    assert code == 0, err
    result = json.loads(out)
    assert "%|" not in err, "no progress bar when not on a terminal"
    info, summary = result["info"], result["summary"]
    assert info["participant_ids"] == PEOPLE and info["unlabelled_left_out"] == ["u01"] and info["folds"] == 5
    variants = summary["variants"]
    assert list(variants) == ["gravity=remove", "gravity=keep"] and summary["baseline"] == "gravity=remove"
    for v in variants.values():
        assert v["fold_runs"] == 5 and v["failed_runs"] == 0
        assert set(v["per_participant"]) == set(PEOPLE), "every participant is tested once"
        assert set(v["per_class_f1"]) == {"hand_tapping", "sitting"} and 0 <= v["macro_f1_mean"] <= 1
        assert v["classes"] == ["hand_tapping", "sitting"] and sum(map(sum, v["confusion_matrix"])) > 0
        assert [f["test"] for f in v["folds"]] == [f["test"] for f in variants["gravity=remove"]["folds"]]
        # every recording decoded whole: the macro-F1 after each step, the timeline, the time of each step
        assert set(v["steps_macro_f1"]) == {"window", "aligned", "decoded", "causal"}
        assert v["steps_macro_f1"]["decoded"] == pytest.approx(v["macro_f1_mean"])
        assert v["timeline"]["switches_per_hour_true"] > 0 and 0 <= v["timeline"]["minutes_correct_share"] <= 1
        assert set(v["seconds_per_1000_windows"]) == {"align", "classify", "smooth"}
        assert sum(map(sum, v["window_confusion_matrix"])) == sum(map(sum, v["confusion_matrix"]))
        assert v["calibration"] == {}  # calibration_folds 0: no calibration, no estimate
    paired = summary["paired"]["gravity=keep"]
    assert paired["fold_runs"] == 5 and paired["participants"] == 5

    client, kinds = runs_by_kind(tmp_path)
    (parent,) = kinds["evaluation"]
    assert parent.info.run_id == result["mlflow"]["parent_run_id"] and parent.info.status == "FINISHED"
    assert len(kinds["variant"]) == 2 and len(kinds["fold"]) == 10
    variant_ids = {r.info.run_id for r in kinds["variant"]}
    assert {r.data.tags["mlflow.parentRunId"] for r in kinds["variant"]} == {parent.info.run_id}
    assert {r.data.tags["mlflow.parentRunId"] for r in kinds["fold"]} == variant_ids
    assert all(r.info.status == "FINISHED" and "macro_f1" in r.data.metrics for r in kinds["fold"])
    keep = next(r for r in kinds["variant"] if r.data.tags["mlflow.runName"] == "gravity=keep")
    assert keep.data.params["preprocess.gravity"] == "keep" and keep.data.params["train.epochs"] == "2"
    assert keep.data.metrics["macro_f1_mean"] == pytest.approx(variants["gravity=keep"]["macro_f1_mean"])
    artifacts = {a.path for a in client.list_artifacts(keep.info.run_id)}
    assert {"summary.json", "confusion_matrix.png"} <= artifacts
    fold = kinds["fold"][0]
    assert len(client.get_metric_history(fold.info.run_id, "train_loss")) == 2  # one point per epoch
    assert "report.txt" in {a.path for a in client.list_artifacts(parent.info.run_id)}


def test_text_report(tmp_path: Path, cohort: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = evaluate(tmp_path, cohort, "--folds", "2", "--variant", "wide:model.conv_filters=8",
                            "--set", "decoding.calibration_folds=2", capsys=capsys)
    assert code == 0
    for expected in ("2-fold leave-participants-out", "macro-F1 mean ± sd", "per-class F1 (mean over folds)",
                     "per-participant macro-F1", "confusion matrix, default", "confusion matrix, wide",
                     "paired differences against default", "wide - default:", "MLflow: experiment 'har-evaluate'",
                     "macro-F1 after each step of decoding a recording", "+ smoothing (causal)",
                     "minutes right (decoded)", "switches/h true", "calibration on the test people",
                     "ECE uncalibrated", "estimate within ±0.05"):
        assert expected in out, expected
    # calibrated out of fold on each fold's training people: ECE before/after and the estimate of each test person
    row = next(line for line in out.splitlines() if line.startswith("default ") and "/5" in line)
    ece_before, ece_after, temperature, within = row.split()[1:5]
    assert 0 <= float(ece_before) <= 1 and 0 <= float(ece_after) <= 1 and float(temperature) > 0
    assert 0 <= int(within.split("/")[0]) <= 5


def test_a_failing_fold_is_reported_and_the_others_still_run(tmp_path: Path, cohort: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    raw = tmp_path / "raw"
    for pid in PEOPLE:
        write_two_class_participant(raw / pid)
    # one person did only an activity nobody else did: the fold that tests them has no class the model knows
    labels_table(T0, [(1.0, 39.0, "laying")]).write_csv(raw / "p03" / "labels.csv")
    code, out, err = evaluate(tmp_path / "home", raw, "--folds", "5", capsys=capsys)
    assert code == 1
    assert "FAILED fold runs: 1" in out and "(test p03): ValueError: no labelled test windows of a known class" in out
    assert "FAILED default | seed 0 | fold" in err
    assert "default" in out and " 4/5 " in out
    _, kinds = runs_by_kind(tmp_path / "home")
    statuses = sorted(r.info.status for r in kinds["fold"])
    assert statuses == ["FAILED", "FINISHED", "FINISHED", "FINISHED", "FINISHED"]
    failed = next(r for r in kinds["fold"] if r.info.status == "FAILED")
    assert "no labelled test windows" in failed.data.tags["har.error"]
    assert kinds["variant"][0].info.status == "FAILED" and kinds["evaluation"][0].info.status == "FAILED"


def test_a_variant_whose_preprocessing_fails_fails_all_its_folds(tmp_path: Path, cohort: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    code, out, _ = evaluate(tmp_path, cohort, "--folds", "2", "--variant", "long:window_size=5000", capsys=capsys)
    assert code == 1
    assert "long, fold 0 seed 0" in out and "no segment is long enough for one window of 5000 samples" in out


def test_bad_arguments_and_unreadable_cohorts_exit_2(tmp_path: Path, cohort: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    code, _, err = evaluate(tmp_path, cohort, "--set", "gravity=sideways", capsys=capsys)
    assert code == 2 and "invalid setting: preprocess.gravity" in err
    code, _, err = evaluate(tmp_path, cohort, "--compare", "seed=1,2", capsys=capsys)
    assert code == 2 and "'seed' is ambiguous" in err
    code, _, err = evaluate(tmp_path, cohort, "--folds", "9", capsys=capsys)
    assert code == 2 and "5 labelled participants are too few for 9 folds" in err
    broken = tmp_path / "broken"
    for pid in PEOPLE[:3]:
        write_two_class_participant(broken / pid)
    edit_cell(broken / "p02" / "accelerometer.csv", "calibrated_accel_x", 3, "[1, nan]")
    code, _, err = evaluate(tmp_path, broken, "--folds", "2", capsys=capsys)
    assert code == 2 and "participant 'p02': accelerometer.csv, column 'calibrated_accel_x', row 5" in err
    _, kinds = runs_by_kind(tmp_path)
    assert "fold" not in kinds, "nothing is trained on a cohort that cannot be read"
