"""Cross-validation by participant, experiment variants and their summaries (pure: no MLflow, no Dagster)."""

from __future__ import annotations

import pytest

from har_assets.config import GravityMode
from har_assets.ml.crossval import FoldResult, participant_folds
from har_assets.ml.cv_summary import paired_difference, summarize, summarize_variant
from har_assets.ml.variants import (
    REFERENCE,
    ExperimentConfig,
    VariantError,
    apply_overrides,
    build_variants,
    parse_assignments,
    resolve_key,
)

PEOPLE = [f"S{i:02d}" for i in range(1, 16)]


def test_every_participant_is_tested_exactly_once_and_never_trained_on() -> None:
    folds = participant_folds(PEOPLE, 5, validation_share=0.15, seed=0)
    assert len(folds) == 5
    assert sorted(p for f in folds for p in f.test) == PEOPLE
    for f in folds:
        assert len(f.test) == 3 and len(f.validation) == 2 and len(f.train) == 10
        assert not set(f.test) & set(f.train) and not set(f.test) & set(f.validation)
        assert not set(f.validation) & set(f.train)
        assert sorted(f.test + f.validation + f.train) == PEOPLE
    assert folds == participant_folds(list(reversed(PEOPLE)), 5, 0.15, seed=0)
    assert folds != participant_folds(PEOPLE, 5, 0.15, seed=1)
    assert all(f.validation == [] for f in participant_folds(PEOPLE, 3, 0.0))


@pytest.mark.parametrize(("people", "k", "share"), [(3, 5, 0.15), (4, 2, 0.5), (5, 1, 0.15)])
def test_too_few_people_for_the_folds(people: int, k: int, share: float) -> None:
    with pytest.raises(ValueError, match="folds"):
        participant_folds(PEOPLE[:people], k, share)


def test_keys_resolve_to_one_section_or_say_why_not() -> None:
    assert resolve_key("gravity") == ("preprocess", "gravity")
    assert resolve_key("train.epochs") == ("train", "epochs")
    assert resolve_key("lstm_units") == ("model", "lstm_units")
    with pytest.raises(VariantError, match=r"ambiguous: say which, train.seed or split.seed"):
        resolve_key("seed")
    with pytest.raises(VariantError, match="no setting is called 'epoch'"):
        resolve_key("epoch")
    with pytest.raises(VariantError, match="train has no field 'gravity'"):
        resolve_key("train.gravity")
    with pytest.raises(VariantError, match="unknown section 'optim'"):
        resolve_key("optim.lr")


def test_overrides_are_validated_by_the_sections_own_models() -> None:
    cfg = apply_overrides(ExperimentConfig(), parse_assignments(["gravity=keep", "train.epochs=40", "lr=3e-4",
                                                                 "activities=[\"a\", \"b\"]"]))
    assert cfg.preprocess.gravity is GravityMode.KEEP and cfg.train.epochs == 40 and cfg.train.lr == 3e-4
    assert cfg.preprocess.activities == ("a", "b") and cfg.model == ExperimentConfig().model
    with pytest.raises(VariantError, match=r"preprocess.gravity: Input should be 'remove', 'keep' or 'separate'"):
        apply_overrides(ExperimentConfig(), {"gravity": "sideways"})
    with pytest.raises(VariantError, match=r"train.epochs: Input should be greater than or equal to 1"):
        apply_overrides(ExperimentConfig(), {"epochs": "0"})
    with pytest.raises(VariantError, match="window_step must not exceed window_size"):
        apply_overrides(ExperimentConfig(), {"window_step": "500"})
    with pytest.raises(VariantError, match="expected key=value"):
        parse_assignments(["gravity"])


def test_variants_from_compare_axes_named_variants_and_the_reference() -> None:
    base = ExperimentConfig()
    variants = build_variants(base, ["gravity=remove,keep", "train.lr_schedule=constant,cosine"],
                              ["big:conv_filters=128,lstm_units=128"], reference=True)
    names = [v.name for v in variants]
    assert names == ["gravity=remove, train.lr_schedule=constant", "gravity=remove, train.lr_schedule=cosine",
                     "gravity=keep, train.lr_schedule=constant", "gravity=keep, train.lr_schedule=cosine", "big",
                     "reference"]
    keep_cosine = variants[3].config
    assert keep_cosine.preprocess.gravity is GravityMode.KEEP and keep_cosine.train.lr_schedule == "cosine"
    assert variants[4].config.model.conv_filters == 128 and variants[4].config.model.lstm_units == 128
    ref = variants[5].config
    assert ref.preprocess.gravity is GravityMode.KEEP and ref.train.epochs == 30 and ref.train.optimizer == "adam"
    assert ref.split.validation_share == 0.0 and variants[5].overrides == REFERENCE
    assert [v.name for v in build_variants(base)] == ["default"]
    with pytest.raises(VariantError, match="must differ"):
        build_variants(base, [], ["a:epochs=2", "a:epochs=3"])
    with pytest.raises(VariantError, match=r"split.test_share is decided by the folds"):
        build_variants(base, ["split.test_share=0.5"])
    with pytest.raises(VariantError, match="--compare expects"):
        build_variants(base, ["gravity"])


def _fold(variant: str, fold: int, f1: float, people: dict[str, float], seed: int = 0) -> FoldResult:
    per_class = {"sit": {"f1": f1, "support": 4, "precision": f1, "recall": f1},
                 "walk": {"f1": f1, "support": 0, "precision": 0.0, "recall": 0.0}}
    report = {"macro_f1": f1, "accuracy": f1, "classes": ["sit", "walk"], "per_class": per_class,
              "confusion_matrix": [[3, 1], [0, 0]],
              "per_participant": {p: {"macro_f1": v, "accuracy": v, "n_windows": 2} for p, v in people.items()}}
    return FoldResult(variant=variant, fold=fold, seed=seed, test=sorted(people), seconds=1.0, report=report)


def test_summaries_and_paired_differences() -> None:
    base = [_fold("a", 0, 0.6, {"p1": 0.5, "p2": 0.7}), _fold("a", 1, 0.8, {"p3": 0.8, "p4": 0.8})]
    other = [_fold("b", 0, 0.7, {"p1": 0.6, "p2": 0.8}), _fold("b", 1, 0.75, {"p3": 0.7, "p4": 0.8}),
             FoldResult(variant="b", fold=2, seed=0, test=["p5"], seconds=0.5, error="ValueError: boom")]
    s = summarize_variant(other)
    assert s["fold_runs"] == 3 and s["failed_runs"] == 1
    assert s["macro_f1_mean"] == pytest.approx(0.725) and s["macro_f1_sd"] == pytest.approx(0.0353553, abs=1e-6)
    assert s["per_class_f1"] == {"sit": pytest.approx(0.725)}  # 'walk' had no test windows: no F1 term
    assert s["confusion_matrix"] == [[6, 2], [0, 0]] and s["classes"] == ["sit", "walk"]
    assert s["folds"][2] == {"fold": 2, "seed": 0, "test": ["p5"], "seconds": 0.5, "epochs": 0, "best_epoch": None,
                             "error": "ValueError: boom"}
    d = paired_difference(base, other)
    assert d["macro_f1_diff_mean"] == pytest.approx(0.025) and d["fold_runs"] == 2 and d["better_fold_runs"] == 1
    assert d["per_participant"] == pytest.approx({"p1": 0.1, "p2": 0.1, "p3": -0.1, "p4": 0.0})
    assert (d["better_participants"], d["worse_participants"]) == (2, 1)
    assert d["wilcoxon_p_participants"] != d["wilcoxon_p_participants"]  # NaN: too few pairs for the test
    both = summarize({"a": base, "b": other})
    assert both["baseline"] == "a" and set(both["paired"]) == {"b"}
