"""The participant split and the experiment helpers (pure: no Dagster, no MLflow)."""

from __future__ import annotations

import numpy as np
import pytest

from har_assets.ml.datasets import (
    common_channels,
    derive_classes,
    fit_scaler,
    labelled_data,
    labelled_participants,
    windows_fingerprint,
)
from har_assets.ml.experiment import run_experiment
from har_assets.ml.hyperparams import DecodingConfig, ModelConfig, TrainConfig
from har_assets.ml.split import SplitConfig, SplitError, split_participants
from har_assets.signal.windowing import WindowSet

PEOPLE = [f"p{i:02d}" for i in range(12)]


def test_split_quota_and_determinism() -> None:
    split = split_participants(PEOPLE, SplitConfig())
    assert (len(split.test), len(split.validation), len(split.train)) == (3, 0, 9)  # default: no validation set
    with_validation = split_participants(PEOPLE, SplitConfig(validation_share=0.15))
    assert (len(with_validation.test), len(with_validation.validation), len(with_validation.train)) == (3, 2, 7)
    assert with_validation.test == split.test
    assert sorted(split.train + split.validation + split.test) == PEOPLE
    assert split == split_participants(list(reversed(PEOPLE)), SplitConfig())
    assert split_participants(PEOPLE, SplitConfig(seed=1)).test != split.test


def test_version_ignores_unlabelled_participants() -> None:
    split = split_participants(PEOPLE, SplitConfig()).model_copy(update={"fingerprints": {"p00": "abc"}})
    assert split.model_copy(update={"unlabelled": ["u9"]}).version() == split.version()
    assert split.model_copy(update={"fingerprints": {"p00": "abd"}}).version() != split.version()
    assert split_participants([*PEOPLE, "p99"], SplitConfig()).version() != split.version()


def test_new_participants_rarely_move_existing_ones() -> None:
    before = split_participants(PEOPLE, SplitConfig())
    after = split_participants([*PEOPLE, "p12"], SplitConfig())
    moved_into_test = set(after.test) - set(before.test) - {"p12"}
    assert not moved_into_test & set(before.train)  # no earlier training participant becomes a test one


def test_explicit_lists_and_unlabelled() -> None:
    cfg = SplitConfig(test=["p00", "p01"], validation=["p02"])
    split = split_participants(PEOPLE, cfg, unlabelled=["u1"])
    assert split.test == ["p00", "p01"] and split.validation == ["p02"] and len(split.train) == 9
    assert split.unlabelled == ["u1"] and split.role_of("u1") == "unlabelled"
    only = split_participants(PEOPLE, SplitConfig(train=["p03", "p04"], test=["p05"], validation=[]))
    assert only.train == ["p03", "p04"] and only.validation == [] and len(only.unused) == 9
    with pytest.raises(SplitError, match=r"test participants \['u1'\] have no labelled windows"):
        split_participants(PEOPLE, SplitConfig(test=["u1"]), unlabelled=["u1"])
    with pytest.raises(ValueError, match="more than one role"):
        SplitConfig(test=["p00"], train=["p00"])


@pytest.mark.parametrize("n", [0, 1, 2])
def test_too_few_labelled_participants(n: int) -> None:
    with pytest.raises(SplitError, match=f"too few labelled participants to split: {n} "):
        split_participants(PEOPLE[:n], SplitConfig(validation_share=0.15))
    if n < 2:
        with pytest.raises(SplitError, match="too few"):
            split_participants(PEOPLE[:n], SplitConfig())
    assert split_participants(PEOPLE[:2], SplitConfig()).validation == []


def _windows(label_a: str, label_b: str, n: int, seed: int, channels=("a", "b")) -> WindowSet:
    rng = np.random.default_rng(seed)
    labels = np.array([label_a] * (n // 2) + [label_b] * (n - n // 2))
    X = rng.normal(0, 0.2, size=(n, 32, len(channels))).astype(np.float32)
    X[labels == "fast", :, 0] += np.sin(np.linspace(0, 16 * np.pi, 32)).astype(np.float32)
    X += seed  # a per-person offset
    z = np.zeros(n)
    return WindowSet(X=X, labels=labels, start_ms=z, end_ms=z, segment=z.astype(int), channels=channels)


def test_helpers_use_only_the_given_participants() -> None:
    ws = {"p1": _windows("slow", "fast", 20, 1), "p2": _windows("slow", "fast", 20, 2),
          "p3": _windows("slow", "jump", 10, 3), "u": _windows("", "", 8, 4)}
    assert labelled_participants(ws) == (["p1", "p2", "p3"], ["u"])
    assert derive_classes(ws, ["p1", "p2"]) == ["fast", "slow"]
    scaler = fit_scaler(ws, ["p1", "p2"])
    X = np.concatenate([ws["p1"].X, ws["p2"].X]).reshape(-1, 2)
    np.testing.assert_allclose(scaler.mean, X.mean(axis=0), rtol=1e-5)
    data = labelled_data(ws, ["p3"], ["fast", "slow"], scaler)
    assert len(data) == 5 and data.excluded == {"jump": 5} and set(data.groups) == {"p3"}
    assert windows_fingerprint(ws["p1"]) != windows_fingerprint(ws["p2"])
    ws["p2"] = _windows("slow", "fast", 20, 2, channels=("a", "c"))
    with pytest.raises(ValueError, match="different channels"):
        common_channels(ws)


def test_run_experiment_learns_and_scores_test_participants() -> None:
    ws = {f"p{i}": _windows("slow", "fast", 40, i) for i in range(5)}
    split = split_participants(ws, SplitConfig(test=["p0"], validation=["p1"]))
    train_cfg = TrainConfig(epochs=6, lr=5e-3, batch_size=16, device="cpu", num_threads=1, augment_rotation_deg=0)
    # each person here is offset by several training SDs: the GRU over embeddings would see strangers (the
    # default sequence model reads embeddings: docs/defaults.md), the HMM only the window probabilities
    result = run_experiment(ws, split, ModelConfig(conv_filters=8, lstm_units=8), train_cfg,
                            DecodingConfig(smoothing="hmm"), importance_repeats=1)
    assert result.classes == ["fast", "slow"] and result.val_macro_f1 is not None
    report = result.test
    assert report["macro_f1"] > 0.9 and set(report["per_participant"]) == {"p0"}
    assert report["permutation_importance"]["a"] > report["permutation_importance"]["b"]
    assert report["baselines"]["most_frequent"]["macro_f1"] < report["macro_f1"]
