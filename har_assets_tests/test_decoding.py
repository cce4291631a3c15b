"""Decoding a recording whole: the HMM removes flicker inside segments (never across a gap), the causal variant
uses no later window, and a person whose device is turned is recognised once their frame is aligned."""

from __future__ import annotations

import numpy as np
import pytest

from har_assets.ml.decoding import Decoder, label_sequences
from har_assets.ml.experiment import run_experiment
from har_assets.ml.hmm import Hmm, segments
from har_assets.ml.hyperparams import DecodingConfig, ModelConfig, TrainConfig
from har_assets.ml.orientation import rotate_windows, rotation_onto, upright_direction
from har_assets.ml.sequence_model import SequenceNet, to_weights, train_sequence_model
from har_assets.ml.split import DatasetSplit
from har_assets.ml.timeline_metrics import minutes_correct, switches, timeline_scores
from har_assets.signal.windowing import WindowSet

CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
CLASSES = ["sitting", "standing", "walking"]
G = 9.81


def _flickering(runs: list[tuple[int, int]], flip: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """True class per window (runs of (class, windows)) and per-window probabilities that favour a wrong class
    for a `flip` share of the windows."""
    y = np.concatenate([np.full(n, c) for c, n in runs])
    proba = np.full((y.size, 3), 0.1)
    proba[np.arange(y.size), y] = 0.8
    wrong = rng.random(y.size) < flip
    other = (y + rng.integers(1, 3, y.size)) % 3
    proba[wrong] = 0.1
    proba[wrong, other[wrong]] = 0.65
    proba[wrong, y[wrong]] = 0.25
    return y, proba


def _hmm(rng: np.random.Generator) -> Hmm:
    training = [np.concatenate([np.full(int(rng.integers(20, 40)), c) for c in rng.permutation(3)]) for _ in range(20)]
    return Hmm.fit(training, 3)


def test_hmm_learns_lasting_activities_from_label_sequences() -> None:
    hmm = Hmm.fit([[0, 0, 0, 0, -1, 1, 1, 1, 1], [1, 1, 2, 2, 2]], 3, pseudocount=0.5)
    counts = np.array([[3, 1, 0], [0, 4, 1], [0, 0, 2]]) + 0.5  # -1 skipped: 0 -> 1 spans the unlabelled window
    np.testing.assert_allclose(hmm.transition, counts / counts.sum(axis=1, keepdims=True))
    assert np.all(hmm.expected_duration() > 1.5)
    assert Hmm.from_dict(hmm.to_dict()).transition.tolist() == hmm.transition.tolist()
    with pytest.raises(ValueError, match="summing to 1"):
        Hmm(initial=np.full(3, 1 / 3), transition=np.ones((3, 3)))


def test_smoothing_removes_flicker_of_a_recording() -> None:
    rng = np.random.default_rng(0)
    y, proba = _flickering([(0, 60), (1, 40), (2, 80), (0, 50)], flip=0.25, rng=rng)
    decoder = Decoder(DecodingConfig(orientation="none", smoothing="hmm"), _hmm(rng))
    segment = np.zeros(y.size, dtype=int)
    alone = proba.argmax(axis=1)
    decoded = decoder.smooth(proba, segment).argmax(axis=1)
    viterbi = decoder.hmm.viterbi(proba)
    assert (alone == y).mean() < 0.8
    assert (decoded == y).mean() > 0.97 and (viterbi == y).mean() > 0.97
    assert switches(y, segment) == 3
    assert switches(alone, segment) > 40 and switches(decoded, segment) <= 5
    causal = decoder.smooth(proba, segment, causal=True).argmax(axis=1)
    assert (causal == y).mean() > 0.9 and switches(causal, segment) < switches(alone, segment) / 4


def _embedded(runs: list[tuple[int, int]], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """True class per window and 8-d 'embeddings' whose first three dimensions point, noisily, at the class:
    their argmax is wrong for about a quarter of the windows."""
    y = np.concatenate([np.full(n, c) for c, n in runs])
    features = rng.normal(0, 0.6, (y.size, 8))
    features[np.arange(y.size), y] += 1.0
    return y, features


def test_the_sequence_model_removes_flicker_and_its_causal_twin_uses_no_later_window() -> None:
    """The default temporal model: a GRU trained on the training people's embedding sequences labels a new
    recording whose windows alone flicker."""
    rng = np.random.default_rng(5)
    training = [_embedded([(int(c), int(rng.integers(15, 40))) for c in rng.permutation(3)] * 2, rng)
                for _ in range(12)]
    config = DecodingConfig(sequence_length=16, sequence_epochs=15)
    features, labels = [f for _, f in training], [y for y, _ in training]
    offline = train_sequence_model(features, labels, 3, causal=False, config=config, seed=0)
    causal = train_sequence_model(features, labels, 3, causal=True, config=config, seed=0)
    y, test = _embedded([(0, 50), (2, 30), (1, 60), (0, 40)], rng)
    segment = np.zeros(y.size, dtype=int)
    alone = test[:, :3].argmax(axis=1)
    decoded = offline.predict_proba(test).argmax(axis=1)
    assert (alone == y).mean() < 0.85 and switches(alone, segment) > 30
    assert (decoded == y).mean() > 0.95 and switches(decoded, segment) <= 8
    forward = causal.predict_proba(test)
    assert (forward.argmax(axis=1) == y).mean() > 0.9
    np.testing.assert_allclose(causal.predict_proba(test[:70]), forward[:70], atol=1e-6)  # later windows: no say
    assert not np.allclose(offline.predict_proba(test[:70]), offline.predict_proba(test)[:70], atol=1e-3)
    assert causal.causal and not offline.causal


@pytest.mark.parametrize("bidirectional", [True, False])
def test_the_numpy_gru_computes_what_torch_does(bidirectional: bool) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = SequenceNet(8, 5, 3, bidirectional).eval()
    mean, std = np.linspace(-1, 1, 8), np.linspace(0.5, 2, 8)
    weights = to_weights(net, mean, std)
    x = np.random.default_rng(0).normal(size=(40, 8))
    with torch.no_grad():
        expected = torch.softmax(net(torch.tensor((x - mean) / std, dtype=torch.float32)[None])[0], dim=1).numpy()
    np.testing.assert_allclose(weights.predict_proba(x), expected, atol=1e-5)


def test_smoothing_never_crosses_a_gap() -> None:
    """The first windows after a gap are decoded from their own segment only: a long, sure run of one class
    before the gap does not pull them over."""
    decoder = Decoder(DecodingConfig(orientation="none", smoothing="hmm"), _hmm(np.random.default_rng(1)))
    sure_a = np.tile([0.98, 0.01, 0.01], (50, 1))
    weak_b = np.tile([0.3, 0.4, 0.3], (3, 1))
    proba = np.vstack([sure_a, weak_b])
    one_segment = decoder.smooth(proba, np.zeros(53, dtype=int)).argmax(axis=1)
    two_segments = decoder.smooth(proba, np.r_[np.zeros(50, dtype=int), np.ones(3, dtype=int)]).argmax(axis=1)
    assert one_segment[-3:].tolist() == [0, 0, 0]  # across it, the run before would win
    assert two_segments[-3:].tolist() == [1, 1, 1]
    assert [s.start for s in segments(np.array([0, 0, 1, 1, 1, 4]))] == [0, 2, 5]


def test_causal_decoding_uses_no_later_window() -> None:
    rng = np.random.default_rng(2)
    _, proba = _flickering([(0, 30), (2, 30)], flip=0.3, rng=rng)
    decoder = Decoder(DecodingConfig(orientation="none", smoothing="hmm"), _hmm(rng))
    segment = np.zeros(len(proba), dtype=int)
    changed = proba.copy()
    changed[40:] = [0.98, 0.01, 0.01]
    causal, causal_changed = (decoder.smooth(p, segment, causal=True) for p in (proba, changed))
    np.testing.assert_array_equal(causal[:40], causal_changed[:40])
    offline, offline_changed = (decoder.smooth(p, segment) for p in (proba, changed))
    assert not np.allclose(offline[:40], offline_changed[:40])  # offline, later windows do count


def test_timeline_metrics() -> None:
    y = np.array([0, 0, 1, 1, -1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 0, 1, 2, 1])
    start = np.array([0, 2, 4, 6, 8, 10, 60_000, 62_000], dtype=float) * 1.0
    segment = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    assert minutes_correct(y, pred, start) == (1, 2)  # minute 1: predicted 2 and 1 once each, the tie goes to 1
    scores = timeline_scores(y, pred, segment, start)
    # on the labelled windows (the unlabelled one skipped), inside each segment: 0 0 1 1 1 | 2 2 and 0 1 1 1 1 | 2 1
    assert scores["switches_true"] == 1 and scores["switches_predicted"] == 2


# ------------------------------------------------------------------------------------ the person's own frame


def _tilt(deg: float, axis: str = "x") -> np.ndarray:
    """Rotation by `deg` about a device axis."""
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]), "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])}[axis]


def _person(seed: int, turn: np.ndarray, runs: int = 6, window: int = 32) -> WindowSet:
    """A recording of a device on the trunk: standing (gravity on the device's z axis), sitting (tilted 35° about
    x), walking (upright, with a 2 Hz bounce); the device worn turned by `turn`. 1 s steps, one gap in the middle."""
    rng = np.random.default_rng(seed)
    t = np.arange(window) / 16.0
    labels, X = [], []
    for _ in range(runs):
        for cls in rng.permutation(CLASSES):
            for _ in range(int(rng.integers(8, 14))):
                up = np.array([0.0, 0.0, G]) if cls != "sitting" else _tilt(35) @ np.array([0.0, 0.0, G])
                acc = np.tile(up, (window, 1)) + rng.normal(0, 0.15, (window, 3))
                gyro = rng.normal(0, 0.05, (window, 3))
                if cls == "walking":
                    acc += np.outer(3.0 * np.sin(2 * np.pi * 2.0 * t + rng.uniform(0, 6)), up / G)
                    gyro += np.outer(np.sin(2 * np.pi * 1.0 * t), [0.5, 0.2, 0.1])
                X.append(np.hstack([acc, gyro]))
                labels.append(cls)
    X = rotate_windows(np.asarray(X, dtype=np.float32), CHANNELS, turn)
    n = len(labels)
    start = np.arange(n) * 1000.0 + np.where(np.arange(n) >= n // 2, 90_000.0, 0.0)
    return WindowSet(X=X, labels=np.array(labels), start_ms=start, end_ms=start + 2000.0,
                     segment=(np.arange(n) >= n // 2).astype(int), channels=CHANNELS)


def test_upright_direction_is_found_from_moving_windows_only() -> None:
    turn = _tilt(30, "y")
    person = _person(3, turn)
    found, moving = upright_direction(person.X, CHANNELS, min_sway=1.0, min_windows=5)
    assert moving == int((person.labels == "walking").sum())
    assert np.degrees(np.arccos(found @ (turn @ [0, 0, 1]))) < 3
    assert upright_direction(person.X[person.labels != "walking"], CHANNELS, 1.0, 5)[0] is None
    back = rotate_windows(person.X, CHANNELS, rotation_onto(found, [0, 0, 1]))
    assert np.degrees(np.arccos(upright_direction(back, CHANNELS, 1.0, 5)[0] @ [0, 0, 1])) < 0.1
    opposite = rotation_onto(np.array([0, 0, 1.0]), np.array([0, 0, -1.0]))
    np.testing.assert_allclose(opposite @ [0, 0, 1.0], [0, 0, -1.0], atol=1e-12)


def test_a_person_whose_device_is_turned_is_recognised_after_alignment() -> None:
    """Trained on people who wear the device nearly alike; the test person wears it turned by 35° about x, so
    their standing looks like everyone else's sitting. Each window alone fails on posture; aligned to the
    training people's upright direction (found from their walking, no labels) they are recognised."""
    people = {f"p{i}": _person(i, _tilt(float(np.random.default_rng(i).normal(0, 3)), "y")) for i in range(4)}
    people["turned"] = _person(9, _tilt(35))
    split = DatasetSplit(train=["p0", "p1", "p2", "p3"], validation=[], test=["turned"], seed=0)
    train = TrainConfig(epochs=8, batch_size=32, lr=3e-3, device="cpu", num_threads=1, augment_rotation_deg=0)
    result = run_experiment(people, split, ModelConfig(conv_filters=8, lstm_units=8, dropout=0.0), train,
                            DecodingConfig(smoothing="none"))
    steps = result.test["steps"]
    assert steps["window"] < 0.75, steps  # standing taken for sitting
    assert steps["aligned"] > 0.95 and result.test["macro_f1"] == steps["decoded"] == steps["aligned"]
    assert result.test["alignment"]["turned"]["applied"]
    assert abs(result.test["alignment"]["turned"]["rotation_deg"] - 35) < 5
    decoder = result.decoder
    assert Decoder.from_dict(decoder.to_dict()).upright_reference.tolist() == decoder.upright_reference.tolist()


def test_a_decoder_learns_from_the_training_people_and_old_bundles_decode_per_window(tmp_path) -> None:
    people = [_person(i, np.eye(3)) for i in range(2)]
    sequences = [s for ws in people for s in label_sequences(ws.labels, ws.segment, CLASSES)]
    assert len(sequences) == 4 and all(s.min() >= 0 for s in sequences)
    decoder = Decoder.fit(DecodingConfig(smoothing="hmm"), sequences, 3, [ws.X for ws in people], CHANNELS)
    assert decoder.hmm is not None and np.degrees(np.arccos(decoder.upright_reference @ [0, 0, 1])) < 2
    assert np.all(decoder.hmm.expected_duration() > 5)  # runs of 8-13 windows
    still = Decoder.fit(DecodingConfig(smoothing="hmm"), sequences, 3, [ws.X[ws.labels != "walking"] for ws in people],
                        CHANNELS)
    assert still.config.orientation == "none" and still.upright_reference is None
    decoder.write(tmp_path)
    assert Decoder.read(tmp_path).to_dict() == decoder.to_dict()
    old = Decoder.read(tmp_path / "nothing-here")
    assert old.config.smoothing == "none" and old.config.orientation == "none"
    proba = np.random.default_rng(0).dirichlet(np.ones(3), 20).astype(np.float32)
    out = old.decode(people[0].X[:20], people[0].segment[:20], CHANNELS, lambda X: proba)
    np.testing.assert_array_equal(out.proba, proba)
    assert not out.alignment.applied
