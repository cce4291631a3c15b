"""Which temporal model and which label-free adaptation, measured on the same trained models.

    python benchmarks/decoding_choices.py --raw ../shared/data/hapt-dev --cache /tmp/har-folds   # 5 folds, seeds 0 1

Trains the default configuration once per participant fold and training seed (as `har evaluate` does; with
`--cache`, the fold models are kept there and reused by the next run), then decodes each test person's whole
recording in every way compared, all on the same models:

- adaptation: none; the person's own standardisation (scaler re-fit on their windows); batch-norm statistics
  re-estimated on their windows (AdaBN); their upright direction aligned to the training people's (the default);
- temporal model, inside each gap-free segment: none; the HMM (transitions from the training people's labels),
  forward-backward, Viterbi and forward-only (causal); the same HMM keeping only how long activities last (one
  stay probability, switches uniform: no order of activities learned); the small GRU over the window embeddings
  (`har_assets.ml.sequence_model`, the default; both directions, and forward-only), trained on the training
  people's sequences (aligned, as the product trains it; and unaligned, for the GRU without alignment).

Nothing here uses a test person's labels but to score. Prints mean macro-F1 ± sd over the fold runs, how many
fold runs beat each window alone, per-class F1, switches per hour and minutes labelled correctly, and the
seconds per 1,000 windows each step costs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn

from har_assets.evaluation.command import open_cohort
from har_assets.ml.crossval import participant_folds
from har_assets.ml.datasets import WindowSets
from har_assets.ml.decoding import LOG_FLOOR, Decoder, label_sequences
from har_assets.ml.experiment import fit_decoder, run_experiment
from har_assets.ml.hmm import Hmm, segments
from har_assets.ml.metrics import macro_f1
from har_assets.ml.model import CnnBiLstm, build_model
from har_assets.ml.scaler import ChannelScaler
from har_assets.ml.split import DatasetSplit
from har_assets.ml.timeline_metrics import timeline_scores, timeline_summary
from har_assets.ml.variants import ExperimentConfig


def fold_models(windows: WindowSets, people: list[str], cfg: ExperimentConfig, folds: int, seeds: list[int],
                cache: Path) -> list[dict]:
    """Every fold run's trained model (trained now, or read from `cache`)."""
    cache.mkdir(parents=True, exist_ok=True)
    runs = []
    for seed in seeds:
        train_cfg = cfg.train.model_copy(update={"seed": seed})
        for fold in participant_folds(people, folds, cfg.split.validation_share, cfg.split.seed):
            tag = f"s{seed}f{fold.index}"
            meta_file = cache / f"{tag}.json"
            if not meta_file.exists():
                t0 = time.perf_counter()
                split = DatasetSplit(train=fold.train, validation=fold.validation, test=fold.test, seed=cfg.split.seed)
                exp = run_experiment(windows, split, cfg.model, train_cfg, cfg.decoding, evaluate_test=False)
                torch.save(exp.train.model.state_dict(), cache / f"{tag}.pt")
                meta_file.write_text(json.dumps({"train": fold.train, "validation": fold.validation,
                                                 "test": fold.test, "classes": exp.classes,
                                                 "scaler": exp.scaler.to_dict(),
                                                 "seconds": time.perf_counter() - t0}))
                print(f"trained {tag} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            meta = json.loads(meta_file.read_text())
            model = build_model(cfg.model, len(meta["scaler"]["channels"]), len(meta["classes"]))
            model.load_state_dict(torch.load(cache / f"{tag}.pt", weights_only=True))
            runs.append(meta | {"tag": tag, "model": model.eval(), "scaler": ChannelScaler.from_dict(meta["scaler"])})
    return runs


def forward(model: CnnBiLstm, X: np.ndarray, adapt_batchnorm: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, embeddings) of scaled windows; with `adapt_batchnorm`, the batch-norm statistics are
    first re-estimated on these windows (on a copy of the model)."""
    if adapt_batchnorm:
        state = {k: v.clone() for k, v in model.state_dict().items()}
        model = build_model(model.cfg, model.n_channels, model.n_classes)
        model.load_state_dict(state)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.reset_running_stats()
                m.momentum = None  # a cumulative average over every batch
        model.train()
        with torch.no_grad():
            for part in torch.from_numpy(X).split(512):
                model.conv(part.transpose(1, 2))
    model.eval()
    with torch.no_grad():
        probas, embeddings = [], []
        for part in torch.from_numpy(X).split(512):
            out, _ = model.lstm(model.conv(part.transpose(1, 2)).transpose(1, 2))
            embedding = out.mean(dim=1)
            probas.append(torch.softmax(model.head(embedding), dim=1).numpy())
            embeddings.append(embedding.numpy())
    return np.concatenate(probas), np.concatenate(embeddings)


def duration_only(hmm: Hmm) -> Hmm:
    """The HMM keeping only the mean stay probability: every switch equally likely, no order learned."""
    k = hmm.n_classes
    stay = float(np.diag(hmm.transition).mean())
    transition = np.full((k, k), (1 - stay) / (k - 1))
    np.fill_diagonal(transition, stay)
    return Hmm(initial=np.full(k, 1 / k), transition=transition)


class Timer:
    """Seconds per 1,000 windows of each step, averaged over the people decoded."""

    def __init__(self, seconds: dict[str, list[float]]) -> None:
        self.seconds = seconds

    def __call__(self, name: str, n_windows: int, fn: Callable[..., np.ndarray], *args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        self.seconds.setdefault(name, []).append(1000 * (time.perf_counter() - t0) / n_windows)
        return out


def by_segment(decode: Callable[[np.ndarray], np.ndarray], values: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """A class per window, each gap-free segment decoded on its own."""
    out = np.empty(len(values), dtype=np.int64)
    for part in segments(segment):
        out[part] = decode(values[part])
    return out


def adaptations(model: CnnBiLstm, scaler: ChannelScaler, decoder: Decoder, X: np.ndarray,
                timer: Timer) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(probabilities, embeddings) of one person's windows under each label-free adaptation."""
    n = len(X)
    person = ChannelScaler.fit(X, scaler.channels)
    return {
        "window": timer("classify", n, forward, model, scaler.transform(X)),
        "person z-score": timer("person z-score + classify", n, forward, model, person.transform(X)),
        "AdaBN": timer("AdaBN + classify", n, forward, model, scaler.transform(X), adapt_batchnorm=True),
        "upright": timer("align + classify", n, lambda: forward(model, scaler.transform(
            decoder.align(X, scaler.channels)[0]))),
    }


def decode_run(run: dict, windows: WindowSets, cfg: ExperimentConfig, rows: dict, timer: Timer) -> None:
    """Every choice on one fold run's test people; appends (run, person, y, prediction, ws) to rows[choice]."""
    model, scaler, classes = run["model"], run["scaler"], run["classes"]
    seed = int(run["tag"][1:].split("f")[0])
    decoder = fit_decoder(cfg.decoding.model_copy(update={"smoothing": "hmm"}), windows, run["train"], classes,
                          model, scaler, seed)
    hmm, sticky = decoder.hmm, duration_only(decoder.hmm)
    t0 = time.perf_counter()
    gru = fit_decoder(cfg.decoding.model_copy(update={"smoothing": "gru"}), windows, run["train"], classes, model,
                      scaler, seed)  # trained on the aligned training people, as the product does
    unaligned = fit_decoder(cfg.decoding.model_copy(update={"smoothing": "gru", "orientation": "none"}), windows,
                            run["train"], classes, model, scaler, seed)
    on_proba = fit_decoder(cfg.decoding.model_copy(update={"smoothing": "gru", "sequence_inputs": "log_proba"}),
                           windows, run["train"], classes, model, scaler, seed)
    timer.seconds.setdefault("train the GRUs (s per fold run, not per 1,000 windows)", []).append(
        time.perf_counter() - t0)
    smoothers = {"HMM": lambda p: hmm.posterior(p).argmax(axis=1), "HMM Viterbi": hmm.viterbi,
                 "HMM causal": lambda p: hmm.forward_filter(p).argmax(axis=1),
                 "HMM durations only": lambda p: sticky.posterior(p).argmax(axis=1)}
    sequence_models = {"window": {"GRU": (unaligned.sequence, "embedding")},
                       "upright": {"GRU": (gru.sequence, "embedding"), "GRU causal": (gru.sequence_causal, "embedding"),
                                   "GRU on log-probabilities": (on_proba.sequence, "log_proba"),
                                   "GRU on log-probabilities, causal": (on_proba.sequence_causal, "log_proba")}}
    for p in run["test"]:
        ws = windows[p]
        y = np.concatenate(label_sequences(ws.labels, ws.segment, classes))
        for adaptation, (proba, embedding) in adaptations(model, scaler, decoder, ws.X, timer).items():
            rows.setdefault(adaptation, []).append((run["tag"], p, y, proba.argmax(axis=1), ws))
            for name, smooth in smoothers.items():
                pred = timer(name, len(ws), by_segment, smooth, proba, ws.segment)
                rows.setdefault(f"{adaptation} + {name}", []).append((run["tag"], p, y, pred, ws))
            for name, (weights, inputs) in sequence_models.get(adaptation, {}).items():
                features = embedding if inputs == "embedding" else np.log(np.maximum(proba, LOG_FLOOR))
                pred = timer(name, len(ws), by_segment, lambda e, w=weights: w.predict_proba(e).argmax(axis=1),
                             features, ws.segment)
                rows.setdefault(f"{adaptation} + {name}", []).append((run["tag"], p, y, pred, ws))


def summarize(rows: list[tuple], classes: list[str]) -> dict:
    by_run: dict[str, list[tuple]] = {}
    for row in rows:
        by_run.setdefault(row[0], []).append(row)
    f1s, per_class, parts = {}, {c: [] for c in classes}, []
    for tag, items in sorted(by_run.items()):
        y = np.concatenate([r[2] for r in items])
        pred = np.concatenate([r[3] for r in items])
        keep = y >= 0
        f1s[tag] = macro_f1(y[keep], pred[keep])
        scores = f1_score(y[keep], pred[keep], labels=list(range(len(classes))), average=None, zero_division=0)
        for c, s in zip(classes, scores, strict=True):
            if (y[keep] == classes.index(c)).any():
                per_class[c].append(float(s))
        parts += [timeline_scores(r[2], r[3], r[4].segment, r[4].start_ms) for r in items]
    people: dict[str, list[float]] = {}
    for _, p, y, pred, _ in rows:
        people.setdefault(p, []).append(macro_f1(y[y >= 0], pred[y >= 0]))
    return {"runs": f1s, "per_class": {c: float(np.mean(v)) for c, v in per_class.items() if v},
            "timeline": timeline_summary(parts), "people": {p: float(np.mean(v)) for p, v in sorted(people.items())}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw", type=Path, required=True, help="folder of labelled participant folders")
    parser.add_argument("--cache", type=Path, required=True, help="folder for the trained fold models (reused)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args(argv)
    cfg = ExperimentConfig()
    cohort = open_cohort(args.raw.resolve())
    windows = cohort.windows(cfg.preprocess)
    runs = fold_models(windows, cohort.participants, cfg, args.folds, args.seeds, args.cache)
    rows: dict[str, list[tuple]] = {}
    seconds: dict[str, list[float]] = {}
    for run in runs:
        decode_run(run, windows, cfg, rows, Timer(seconds))
    classes = runs[0]["classes"]
    summary = {name: summarize(r, classes) for name, r in rows.items()}
    base = summary["window"]["runs"]
    print(f"{len(runs)} fold runs, {len(cohort.participants)} people; macro-F1 mean ± sd over fold runs, fold runs "
          "better than each window alone, per-class F1, switches per hour (true / predicted), minutes right\n")
    print(f"{'choice':34s} {'macro-F1':>14s} {'better':>6s}  " + "  ".join(f"{c[:9]:>9s}" for c in classes)
          + "   sw/h true/pred  minutes")
    for name, s in summary.items():
        f1 = list(s["runs"].values())
        better = sum(s["runs"][t] > base[t] for t in s["runs"])
        t = s["timeline"]
        print(f"{name:34s} {statistics.fmean(f1):.4f} ± {statistics.stdev(f1):.3f} {better:3d}/{len(f1)}  "
              + "  ".join(f"{s['per_class'].get(c, float('nan')):9.3f}" for c in classes)
              + f"   {t['switches_per_hour_true']:6.0f} / {t['switches_per_hour_predicted']:4.0f}"
              + f"  {t['minutes_correct_share']:.3f}")
    print("\nseconds per 1,000 windows (GRU training: seconds per fold run)")
    for name, values in seconds.items():
        print(f"  {name:34s} {statistics.fmean(values):9.2f}")
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "seconds": {k: statistics.fmean(v)
                                                                         for k, v in seconds.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
