"""The CNN-BiLSTM activity classifier (its hyper-parameters: `har_assets.ml.hyperparams.ModelConfig`)."""

from __future__ import annotations

import torch
from torch import nn

from har_assets.ml.hyperparams import ModelConfig


class CnnBiLstm(nn.Module):
    """Conv1d feature extractor over time, a bidirectional LSTM, mean pooling over time, linear head.

    Input: float32 ``(batch, window, channels)``; output: logits ``(batch, n_classes)``.
    Each conv block is Conv1d('same' padding) → BatchNorm1d → ReLU → MaxPool1d(2), so a
    200-sample window reaches the LSTM as 50 steps with the default two blocks.
    """

    def __init__(self, cfg: ModelConfig, n_channels: int, n_classes: int) -> None:
        super().__init__()
        if n_channels < 1 or n_classes < 2:
            raise ValueError(f"need n_channels >= 1 and n_classes >= 2, got {n_channels} and {n_classes}")
        self.cfg = cfg
        self.n_channels = n_channels
        self.n_classes = n_classes
        blocks: list[nn.Module] = []
        in_ch = n_channels
        for _ in range(cfg.conv_layers):
            blocks += [
                nn.Conv1d(in_ch, cfg.conv_filters, cfg.kernel_size, padding=cfg.kernel_size // 2, bias=False),
                nn.BatchNorm1d(cfg.conv_filters),
                nn.ReLU(inplace=True),
                nn.MaxPool1d(2, ceil_mode=True),
            ]
            in_ch = cfg.conv_filters
        self.conv = nn.Sequential(*blocks)
        self.lstm = nn.LSTM(
            input_size=cfg.conv_filters,
            hidden_size=cfg.lstm_units,
            num_layers=cfg.lstm_layers,
            batch_first=True,
            bidirectional=True,
            dropout=cfg.dropout if cfg.lstm_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(2 * cfg.lstm_units, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The window's embedding (batch, 2*units): the LSTM's output averaged over time."""
        if x.ndim != 3 or x.shape[2] != self.n_channels:
            raise ValueError(f"expected input (batch, window, {self.n_channels}), got {tuple(x.shape)}")
        h = self.conv(x.transpose(1, 2))  # (batch, filters, time')
        out, _ = self.lstm(h.transpose(1, 2))  # (batch, time', 2*units)
        return out.mean(dim=1)

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        """Logits (batch, classes) of embeddings."""
        return self.head(self.dropout(embedding))


class WithEmbedding(nn.Module):
    """The classifier answering (logits, embedding): what the ONNX graph exports, for decoders that read embeddings."""

    def __init__(self, model: CnnBiLstm) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.model.embed(x)
        return self.model.classify(embedding), embedding


def build_model(cfg: ModelConfig, n_channels: int, n_classes: int) -> CnnBiLstm:
    """A freshly initialised :class:`CnnBiLstm` (seed torch first for reproducible weights)."""
    return CnnBiLstm(cfg, n_channels, n_classes)
