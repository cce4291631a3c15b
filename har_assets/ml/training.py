"""Training loop: validated inputs, balanced class weights, a learning-rate schedule, optional augmentation,
early stopping on validation macro-F1."""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

from har_assets.ml.augment import WindowAugmenter
from har_assets.ml.hyperparams import EpochStats, ModelConfig, TrainConfig
from har_assets.ml.inference import predict_proba
from har_assets.ml.metrics import macro_f1
from har_assets.ml.model import CnnBiLstm, build_model
from har_assets.ml.scaler import ChannelScaler


@dataclass
class TrainResult:
    """The trained model (best validation state restored, eval mode, on CPU) and its history.

    Without a validation set there is no early stopping: the model is the last epoch's,
    ``best_epoch`` is the last epoch and ``best_val_macro_f1`` is None.
    """

    model: CnnBiLstm
    history: list[EpochStats]
    best_epoch: int
    best_val_macro_f1: float | None
    device: str
    class_weights: list[float] = field(default_factory=list)
    stopped_early: bool = False  # True when patience ran out before the last configured epoch


def select_device(pref: Literal["auto", "cpu", "cuda"] = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU. ``cuda`` without a GPU raises ValueError."""
    if pref == "cpu":
        return torch.device("cpu")
    if pref == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    if pref not in ("auto", "cuda"):
        raise ValueError(f"unknown device preference {pref!r} (use 'auto', 'cpu' or 'cuda')")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def balanced_class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """sklearn 'balanced' weights ``n / (n_present * count)`` for classes present in ``y``; 0 for absent ones."""
    weights = np.zeros(n_classes, dtype=np.float64)
    present = np.unique(y)
    weights[present] = compute_class_weight("balanced", classes=present, y=y)
    return weights


def _check_xy(X: np.ndarray, y: np.ndarray, n_classes: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 3:
        raise ValueError(f"X_{name} must have shape (n, window, channels), got {X.shape}")
    if y.ndim != 1 or (y.size and not np.issubdtype(y.dtype, np.integer)):
        raise ValueError(f"y_{name} must be a 1-D array of integer class indices, got {y.dtype} {y.shape}")
    if len(X) != len(y):
        raise ValueError(f"X_{name} and y_{name} differ in length: {len(X)} windows vs {len(y)} labels")
    X = X.astype(np.float32, copy=False)
    if not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).any(axis=(1, 2)).sum())
        raise ValueError(f"X_{name} contains NaN or infinite values in {bad} window(s)")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"y_{name} has labels outside [0, {n_classes}) for {n_classes} classes "
                         f"(min {y.min()}, max {y.max()})")
    return X, y.astype(np.int64)


def _evaluate(model: nn.Module, X: np.ndarray, y: np.ndarray, device: torch.device) -> tuple[float, float, float]:
    proba = predict_proba(model, X, device=device)
    loss = float(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, None)).mean())
    pred = proba.argmax(axis=1)
    return loss, float((pred == y).mean()), macro_f1(y, pred)


def train_model(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray | None,
    y_val: np.ndarray | None,
    classes: Sequence[str],
    model_cfg: ModelConfig | None = None,
    train_cfg: TrainConfig | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    scaler: ChannelScaler | None = None,
) -> TrainResult:
    """Train a :class:`CnnBiLstm` on ``X`` float32 ``(n, window, channels)`` and ``y`` indices into ``classes``.

    Early stopping keeps the epoch with the best validation macro-F1 (after ``patience`` epochs
    without improvement training stops). ``X_val``/``y_val`` may be None or empty: then every
    epoch runs and the last state is kept. Same seed on CPU gives identical weights; global RNG
    states, thread count and the deterministic-algorithms flag are restored afterwards.
    ``on_epoch`` is called once per finished epoch (e.g. to log metrics to MLflow). Augmentation
    (``train_cfg.augment_*``) needs the ``scaler`` the windows were scaled with.
    """
    model_cfg = model_cfg or ModelConfig()
    train_cfg = train_cfg or TrainConfig()
    n_classes = len(classes)
    if n_classes < 2:
        raise ValueError(f"need at least 2 classes, got {list(classes)}")
    Xtr, ytr = _check_xy(X_train, y_train, n_classes, "train")
    if len(Xtr) == 0:
        raise ValueError("the training set is empty")
    if len(np.unique(ytr)) < 2:
        raise ValueError(f"the training set must contain at least 2 classes, found only "
                         f"{[classes[i] for i in np.unique(ytr)]}")
    if X_val is None or y_val is None or len(X_val) == 0:
        if (X_val is not None and len(X_val)) or (y_val is not None and len(y_val)):
            raise ValueError("X_val and y_val must both be given (or both be empty)")
        Xva, yva = np.zeros((0, *Xtr.shape[1:]), np.float32), np.zeros(0, np.int64)
    else:
        Xva, yva = _check_xy(X_val, y_val, n_classes, "val")
        if Xva.shape[1:] != Xtr.shape[1:]:
            raise ValueError(f"X_val windows {Xva.shape[1:]} differ from X_train windows {Xtr.shape[1:]}")
    has_val = len(Xva) > 0
    augment = None
    if train_cfg.augment_rotation_deg > 0 or train_cfg.augment_scale > 0:
        if scaler is None or len(scaler.channels) != Xtr.shape[2]:
            raise ValueError("augmentation needs the scaler of the training windows (train_model(..., scaler=...))")
        augment = WindowAugmenter(scaler, train_cfg.augment_rotation_deg, train_cfg.augment_scale)
    device = select_device(train_cfg.device)
    weights = (balanced_class_weights(ytr, n_classes) if train_cfg.class_weighting == "balanced"
               else np.ones(n_classes))

    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), np.random.get_state(), random.getstate())
    try:
        if train_cfg.num_threads is not None:
            torch.set_num_threads(train_cfg.num_threads)
        torch.use_deterministic_algorithms(True, warn_only=True)
        np.random.seed(train_cfg.seed)
        random.seed(train_cfg.seed)
        with torch.random.fork_rng(devices=[torch.cuda.current_device()] if device.type == "cuda" else []):
            torch.manual_seed(train_cfg.seed)
            return _fit(Xtr, ytr, Xva, yva, has_val, n_classes, weights, model_cfg, train_cfg, device, on_epoch,
                        augment)
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])
        np.random.set_state(saved[3])
        random.setstate(saved[4])


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps: int
                   ) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The per-batch learning-rate schedule over ``steps`` optimizer steps (None: constant)."""
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    if cfg.lr_schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    return None


def _fit(Xtr: np.ndarray, ytr: np.ndarray, Xva: np.ndarray, yva: np.ndarray, has_val: bool, n_classes: int,
         weights: np.ndarray, model_cfg: ModelConfig, cfg: TrainConfig, device: torch.device,
         on_epoch: Callable[[EpochStats], None] | None, augment: WindowAugmenter | None) -> TrainResult:
    model = build_model(model_cfg, n_channels=Xtr.shape[2], n_classes=n_classes).to(device)
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    opt = opt_cls(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = make_scheduler(opt, cfg, cfg.epochs * math.ceil(len(Xtr) / cfg.batch_size))
    criterion = nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32, device=device))
    gen = torch.Generator().manual_seed(cfg.seed)
    X_t, y_t = torch.from_numpy(Xtr), torch.from_numpy(ytr)
    history: list[EpochStats] = []
    best_f1, best_epoch, best_state, stale, stopped = -1.0, 0, None, 0, False
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(X_t), generator=gen)
        total, seen = 0.0, 0
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            if len(idx) < 2 and seen:  # BatchNorm cannot train on a single window
                continue
            xb, yb = X_t[idx].to(device), y_t[idx].to(device)
            if augment is not None:
                xb = augment(xb, gen)
            opt.zero_grad(set_to_none=True)
            loss = criterion(model(xb), yb)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), max_norm=5.0)
            opt.step()
            if scheduler is not None:
                scheduler.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        val_loss = val_acc = val_f1 = None
        if has_val:
            val_loss, val_acc, val_f1 = _evaluate(model, Xva, yva, device)
        stats = EpochStats(epoch, total / max(seen, 1), val_loss, val_acc, val_f1,
                           time.perf_counter() - t0, float(opt.param_groups[0]["lr"]))
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
        if val_f1 is None:
            best_epoch = epoch
        elif val_f1 > best_f1:
            best_f1, best_epoch, stale = val_f1, epoch, 0
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        else:
            stale += 1
            if stale >= cfg.patience and epoch < cfg.epochs:
                stopped = True
                break
    model = model.cpu()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model=model, history=history, best_epoch=best_epoch,
                       best_val_macro_f1=best_f1 if has_val else None, device=str(device),
                       class_weights=[float(w) for w in weights], stopped_early=stopped)
