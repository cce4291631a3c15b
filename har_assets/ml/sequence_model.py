"""Training the small GRU that reads a segment's window embeddings in order and labels every window.

It learns from the training people only: their windows' embeddings (the trained window classifier's pooled LSTM
output, after their frame is aligned) and their labels, in chunks of `sequence_length` consecutive windows of one
gap-free segment (half overlapping; unlabelled windows carry no loss). The weights leave as numpy
(`har_assets.ml.gru.SequenceWeights`), so serving runs them without torch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from har_assets.ml.gru import GruDirection, SequenceWeights
from har_assets.ml.hyperparams import DecodingConfig

LEARNING_RATE = 1e-3
BATCH_SIZE = 32
DROPOUT = 0.3  # on the embeddings
MIN_STEPS = 300  # optimiser steps at least, however few chunks a small study has


class SequenceNet(nn.Module):
    def __init__(self, inputs: int, hidden: int, n_classes: int, bidirectional: bool) -> None:
        super().__init__()
        self.drop = nn.Dropout(DROPOUT)
        self.gru = nn.GRU(inputs, hidden, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.gru(self.drop(x))[0])


def chunks(features: list[np.ndarray], labels: list[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, length, inputs) and (n, length) chunks of every segment at least `length` windows long (`length`
    shortened to the longest segment where none is that long: a study of short recordings still trains)."""
    length = min(length, max((len(f) for f in features), default=0))
    xs, ys = [], []
    for f, y in zip(features, labels, strict=True):
        for a in range(0, len(f) - length + 1, max(length // 2, 1)) if length >= 2 else ():
            if (y[a:a + length] >= 0).any():
                xs.append(f[a:a + length])
                ys.append(y[a:a + length])
    if not xs:
        raise ValueError("no gap-free segment of the training people has two labelled windows in a row to learn a "
                         "sequence model from: use decoding.smoothing 'hmm' or 'none'")
    return np.stack(xs).astype(np.float32), np.stack(ys).astype(np.int64)


def train_sequence_model(features: list[np.ndarray], labels: list[np.ndarray], n_classes: int, causal: bool,
                         config: DecodingConfig, seed: int) -> SequenceWeights:
    """A GRU (forward-only when `causal`, else both directions) trained on the segments' embeddings (T, inputs)
    and class indices (T,; -1 unlabelled) for `sequence_epochs` (more where that is under MIN_STEPS steps); on
    the CPU, seeded."""
    stacked = np.concatenate(features)
    mean, std = stacked.mean(axis=0), stacked.std(axis=0) + 1e-6
    X, Y = chunks([(f - mean) / std for f in features], labels, config.sequence_length)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = SequenceNet(X.shape[2], config.sequence_hidden, n_classes, bidirectional=not causal)
    opt = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    x_all, y_all = torch.from_numpy(X), torch.from_numpy(Y)
    batches = -(-len(x_all) // BATCH_SIZE)
    for _ in range(max(config.sequence_epochs, -(-MIN_STEPS // batches))):
        net.train()
        for idx in torch.randperm(len(x_all), generator=generator).split(BATCH_SIZE):
            loss = nn.functional.cross_entropy(net(x_all[idx]).reshape(-1, n_classes), y_all[idx].reshape(-1),
                                               ignore_index=-1)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return to_weights(net.eval(), mean, std)


def to_weights(net: SequenceNet, mean: np.ndarray, std: np.ndarray) -> SequenceWeights:
    p = {k: v.detach().cpu().numpy().astype(np.float64) for k, v in net.state_dict().items()}

    def direction(suffix: str) -> GruDirection | None:
        if f"gru.weight_ih_l0{suffix}" not in p:
            return None
        return GruDirection(p[f"gru.weight_ih_l0{suffix}"], p[f"gru.weight_hh_l0{suffix}"],
                            p[f"gru.bias_ih_l0{suffix}"], p[f"gru.bias_hh_l0{suffix}"])

    forward = direction("")
    assert forward is not None
    return SequenceWeights(mean.astype(np.float64), std.astype(np.float64), forward, direction("_reverse"),
                           p["head.weight"], p["head.bias"])
