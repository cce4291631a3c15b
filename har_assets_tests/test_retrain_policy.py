"""When retraining pays: the evidence and the decision, without Dagster."""

from __future__ import annotations

import pytest

from har_assets.orchestration.retrain_policy import RetrainEvidence, RetrainPolicy

POLICY = RetrainPolicy(min_labelled_minutes=10, min_flagged_people=3)


def test_new_changed_and_removed_labels_all_count() -> None:
    trained = {"S01": 4.0, "S02": 6.0, "S03": 5.0}
    current = {"S01": 4.0, "S02": 2.5, "S04": 3.0}  # S02 lost labels, S03 left the split, S04 is new
    evidence = RetrainEvidence.compare(trained, current, set(), set())
    assert evidence.minutes == {"S02": -3.5, "S03": -5.0, "S04": 3.0}
    assert evidence.changed_minutes == 11.5
    decision = POLICY.decide(evidence)
    assert decision.retrain
    assert decision.reason == "11.5 new labelled minutes (S02 -3.5, S03 -5.0, S04 +3.0) >= 10"


def test_below_both_thresholds_says_both() -> None:
    evidence = RetrainEvidence.compare({"S03": 1.0}, {"S03": 6.0}, {"S09"}, {"S09", "S20"})
    decision = POLICY.decide(evidence)
    assert not decision.retrain
    assert decision.reason == "5.0 new labelled minutes (S03 +5.0) < 10; 1 newly flagged person (S20) < 3"
    nothing = POLICY.decide(RetrainEvidence.compare({"S01": 2.0}, {"S01": 2.0}, set(), set()))
    assert nothing.reason == "0.0 new labelled minutes < 10; 0 newly flagged people < 3"


def test_enough_newly_flagged_people_lower_the_bar_for_new_labels() -> None:
    same_data = POLICY.decide(RetrainEvidence.compare({}, {}, {"S01"}, {"S01", "S20", "S21", "S22"}))
    assert not same_data.retrain  # the same data would train the same model
    assert same_data.reason == ("0.0 new labelled minutes < 10; 3 newly flagged people (S20, S21, S22) but no "
                                "labelled minutes changed: the same data would train the same model; their labels "
                                "would help (har labels request S20)")
    evidence = RetrainEvidence.compare({"S03": 1.0}, {"S03": 3.0}, {"S01"}, {"S01", "S20", "S21", "S22"})
    decision = POLICY.decide(evidence)  # S01 was flagged before; 2 new minutes are enough with 3 flagged people
    assert decision.retrain
    assert decision.reason == "3 newly flagged people: S20, S21, S22, with 2.0 new labelled minutes"


def test_unknown_minutes_are_not_compared() -> None:
    """Windows made before they recorded `labelled_minutes`: neither new nor removed."""
    evidence = RetrainEvidence.compare({"S01": None, "S02": 3.0}, {"S01": 9.0, "S02": None, "S03": 2.0}, set(), set())
    assert evidence.minutes == {"S03": 2.0}


def test_both_reasons_and_long_lists() -> None:
    current = {f"S{i:02d}": 2.0 for i in range(10)}
    flagged = {f"S{i:02d}" for i in range(10)}
    decision = POLICY.decide(RetrainEvidence.compare({}, current, set(), flagged))
    minutes, people = decision.reason.split("; ")
    assert minutes == ("20.0 new labelled minutes (S00 +2.0, S01 +2.0, S02 +2.0, S03 +2.0, S04 +2.0, S05 +2.0, "
                       "S06 +2.0, S07 +2.0 and 2 more) >= 10")
    assert people == ("10 newly flagged people: S00, S01, S02, S03, S04, S05, S06, S07 and 2 more, with 20.0 new "
                      "labelled minutes")


def test_one_key_per_evidence_state_and_model() -> None:
    evidence = RetrainEvidence.compare({}, {"S03": 12.0}, set(), set())
    same = RetrainEvidence.compare({"S01": 1.0}, {"S01": 1.0, "S03": 12.0}, set(), set())
    assert evidence.key(7) == same.key(7)  # what did not change does not name the state
    assert evidence.key(7) != evidence.key(8)  # on top of another model: another state
    assert evidence.key(7) != RetrainEvidence.compare({}, {"S03": 12.5}, set(), set()).key(7)


@pytest.mark.parametrize(("minutes", "people"), [(0, 3), (10, 0)])
def test_a_zero_threshold_is_refused(minutes: float, people: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        RetrainPolicy(minutes, people)
