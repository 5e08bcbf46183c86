"""LDC: a low-dimensional computing (binary VSA) classifier (Duan, Xu, Ren, arXiv 2203.04894),
trained with knowledge distillation as in Liu, Duan, Xu, Ren (arXiv 2403.13844).

Inference, all binary (bit 1 <-> bipolar -1, so XOR of bits is the product of bipolar values):
    bound_f = V[level_f] XOR F_f                (bind each feature's value with its identity)
    s       = majority_f(bound_f)               (bundle: bit is 1 iff more than half are 1)
    score_c = D - 2 * popcount(s XOR C_c)       (Hamming similarity to each class vector)
    class   = argmax_c score_c                  (first maximum on ties)
V: one D-bit value vector per quantization level, produced by a small "value box" network of the
level position so that neighbouring levels get similar vectors; F: one D-bit vector per feature;
C: one D-bit vector per class. Training maps this to a binary neural network whose sign
functions pass gradients straight through (Bengio et al. 2013; hardtanh window), so any loss,
including the KD loss, trains it.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, DataError


class _SignSTE(torch.autograd.Function):
    """sign with sign(0) = +1 forward; straight-through gradient inside |x| <= 1 (hardtanh')."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x < 0, -torch.ones_like(x), torch.ones_like(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


def ste_sign(x):
    """Bipolar sign (+1 for x >= 0) with a straight-through estimator."""
    return _SignSTE.apply(x)


class LDCNet(nn.Module):
    """LDC as a partially binary network: value box -> bind -> bundle -> Hamming similarity."""

    def __init__(self, num_features, num_levels, dim, num_classes, value_hidden=16):
        super().__init__()
        self.num_features, self.num_levels, self.dim = num_features, num_levels, dim
        self.value_box = nn.Sequential(nn.Linear(1, value_hidden), nn.Tanh(), nn.Linear(value_hidden, dim))
        self.feature_latent = nn.Parameter(torch.empty(num_features, dim).uniform_(-1, 1))
        self.class_latent = nn.Parameter(torch.empty(num_classes, dim).uniform_(-0.1, 0.1))
        self.log_scale = nn.Parameter(torch.tensor(math.log(4.0)))  # logits = scale * similarity / D
        self.register_buffer("positions", torch.linspace(-1, 1, num_levels)[:, None])

    def value_vectors(self):
        """(L, D) bipolar value vectors, one per level."""
        return ste_sign(self.value_box(self.positions))

    def encode(self, levels):
        """(N, F) level indices -> (N, D) bipolar sample vectors (bind, then majority bundle)."""
        bound = self.value_vectors()[levels] * ste_sign(self.feature_latent)  # XOR in bipolar form
        return ste_sign(bound.sum(1) / math.sqrt(self.num_features))

    def similarity(self, levels):
        """(N, C) integer-valued D - 2 * Hamming distance."""
        return self.encode(levels) @ ste_sign(self.class_latent).T

    def forward(self, levels):
        return self.log_scale.exp() * self.similarity(levels) / self.dim

    def clip_latents(self):
        """BinaryConnect: keep the latent weights inside the STE window."""
        with torch.no_grad():
            self.feature_latent.clamp_(-1, 1)
            self.class_latent.clamp_(-1, 1)


def pack_bits(bits) -> np.ndarray:
    """(..., D) bool -> (..., ceil(D/32)) uint32, bit j of a vector in word j // 32 at bit j % 32."""
    bits = np.asarray(bits, dtype=bool)
    words = -(-bits.shape[-1] // 32)
    padded = np.zeros(bits.shape[:-1] + (words * 32,), dtype=np.uint64)
    padded[..., : bits.shape[-1]] = bits
    weights = (np.uint64(1) << np.arange(32, dtype=np.uint64))
    return (padded.reshape(bits.shape[:-1] + (words, 32)) * weights).sum(-1).astype(np.uint32)


def ldc_scores(levels, value_bits, feature_bits, class_bits) -> np.ndarray:
    """Integer LDC scores D - 2 * Hamming(s, C_c), computed on bits (the reference for the C port)."""
    levels = np.asarray(levels)
    bound = value_bits[levels] ^ feature_bits[None]  # (N, F, D)
    ones = bound.sum(1, dtype=np.int64)
    sample = 2 * ones > levels.shape[1]  # majority; ties give 0 (bipolar +1)
    hamming = (sample[:, None, :] ^ class_bits[None]).sum(-1, dtype=np.int64)
    return (class_bits.shape[1] - 2 * hamming).astype(np.int32)


def _as_schedule(alpha):
    from ..distill import AlphaSchedule

    if alpha is None:
        return AlphaSchedule("constant", 0.0, 0.0)
    if isinstance(alpha, (int, float)):
        return AlphaSchedule("constant", float(alpha), float(alpha))
    if isinstance(alpha, AlphaSchedule):
        return alpha
    raise ConfigError(f"LDCClassifier.fit: alpha must be a number or an AlphaSchedule, got {type(alpha).__name__}")


try:  # scikit-learn conventions (get_params, clone, score) when available
    from sklearn.base import BaseEstimator, ClassifierMixin
except ImportError:  # pragma: no cover
    BaseEstimator, ClassifierMixin = object, object


class LDCClassifier(ClassifierMixin, BaseEstimator):
    """scikit-learn style LDC estimator on quantized features (uint8 levels 0..num_levels-1).

    ``fit(X_levels, y, teacher_logits=None, alpha=..., curriculum=...)``: with teacher logits it
    minimizes ``kd_loss`` with the teacher weight ``alpha`` (a number or an AlphaSchedule evaluated
    on training progress) and optionally a teacher-confidence curriculum (easy first, growing pool).
    Learned: ``value_bits_`` (L, D), ``feature_bits_`` (F, D), ``class_bits_`` (C, D) bool arrays,
    ``classes_``, ``n_features_in_``, ``logit_scale_``, ``history_``.
    """

    def __init__(self, dim=64, num_levels=8, epochs=60, batch_size=32, lr=1e-2, temperature=4.0,
                 value_hidden=16, seed=0):
        self.dim = dim
        self.num_levels = num_levels
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.temperature = temperature
        self.value_hidden = value_hidden
        self.seed = seed

    def _check_params(self):
        if not 16 <= int(self.dim) <= 256:
            raise ConfigError(f"LDCClassifier.dim: must be in 16..256, got {self.dim}")
        if not 2 <= int(self.num_levels) <= 256:
            raise ConfigError(f"LDCClassifier.num_levels: must be in 2..256, got {self.num_levels}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0 or not self.temperature > 0:
            raise ConfigError("LDCClassifier: epochs, batch_size, lr and temperature must be positive")

    def _check_levels(self, X, fitted=True):
        X = np.asarray(X)
        if X.ndim != 2:
            raise DataError(f"LDCClassifier: expected levels shaped (N, features), got {X.shape}")
        if fitted and X.shape[1] != self.n_features_in_:
            raise DataError(f"LDCClassifier: expected {self.n_features_in_} features, got {X.shape[1]}")
        if X.size and (not np.issubdtype(X.dtype, np.integer) or X.min() < 0 or X.max() >= self.num_levels):
            raise DataError(f"LDCClassifier: levels must be integers in 0..{self.num_levels - 1}, "
                            f"got dtype {X.dtype} range [{X.min()}, {X.max()}]")
        return X.astype(np.int64)

    def fit(self, X, y, teacher_logits=None, alpha=None, curriculum=None):
        from ..distill import difficulty, easy_first, kd_loss, paced_pool, pool_size

        self._check_params()
        X = self._check_levels(X, fitted=False)
        self.classes_, y_enc = np.unique(np.asarray(y), return_inverse=True)
        if len(self.classes_) < 2:
            raise DataError(f"LDCClassifier.fit: needs at least 2 classes, got {self.classes_.tolist()}")
        self.n_features_in_ = X.shape[1]
        schedule = _as_schedule(alpha)
        uses_teacher = teacher_logits is not None and (schedule.start > 0 or schedule.end > 0)
        t_logits = None
        if teacher_logits is not None:
            t_logits = torch.as_tensor(np.asarray(teacher_logits), dtype=torch.float32)
            if t_logits.shape != (len(X), len(self.classes_)):
                raise DataError(f"LDCClassifier.fit: teacher_logits must be {(len(X), len(self.classes_))}, "
                                f"got {tuple(t_logits.shape)}")
        if curriculum is not None and t_logits is None:
            raise ConfigError("LDCClassifier.fit: a curriculum ranks samples by the teacher, but no teacher_logits")

        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        net = LDCNet(self.n_features_in_, self.num_levels, self.dim, len(self.classes_), self.value_hidden)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        xt, yt = torch.as_tensor(X), torch.as_tensor(y_enc, dtype=torch.int64)
        order = None
        if curriculum is not None:
            order = torch.as_tensor(easy_first(difficulty(t_logits, yt, by=curriculum.by)))
        sizes = [len(X) if curriculum is None else pool_size(len(X), e, self.epochs, pacing=curriculum.pacing,
                                                             start=curriculum.start, saturate=curriculum.saturate)
                 for e in range(self.epochs)]
        # every epoch has len(X) entries (a curriculum pool is repeated): the same steps with or without one
        total = max(self.epochs * -(-len(X) // self.batch_size), 1)
        step, self.history_ = 0, []
        for epoch in range(self.epochs):
            pool = torch.as_tensor(paced_pool(order, sizes[epoch], len(X))) if order is not None else torch.arange(len(X))
            perm = pool[torch.randperm(len(pool), generator=gen)]
            net.train()
            total_loss, a = 0.0, 0.0
            for i in range(0, len(perm), self.batch_size):
                idx = perm[i : i + self.batch_size]
                a = schedule(step / total) if uses_teacher else 0.0
                logits = net(xt[idx])
                loss = kd_loss(logits, t_logits[idx] if uses_teacher else None, yt[idx], alpha=a,
                               temperature=self.temperature)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                net.clip_latents()
                total_loss += loss.item() * len(idx)
                step += 1
            self.history_.append({"epoch": epoch + 1, "loss": total_loss / len(perm), "alpha": a, "pool": sizes[epoch],
                                  "steps": step})
        net.eval()
        with torch.no_grad():
            self.value_bits_ = (net.value_vectors() < 0).numpy()
            self.feature_bits_ = (net.feature_latent < 0).numpy()
            self.class_bits_ = (net.class_latent < 0).numpy()
            self.logit_scale_ = float(net.log_scale.exp())
        self.module_ = net
        return self

    def decision_function(self, X):
        """(N, C) integer scores D - 2 * Hamming distance, from the bits (what the C code computes)."""
        X = self._check_levels(X)
        return ldc_scores(X, self.value_bits_, self.feature_bits_, self.class_bits_)

    def predict(self, X):
        return self.classes_[self.decision_function(X).argmax(1)]

    def predict_proba(self, X):
        z = self.logit_scale_ * self.decision_function(X) / self.dim
        z = np.exp(z - z.max(1, keepdims=True))
        return z / z.sum(1, keepdims=True)

    def export_packed(self) -> dict:
        """The binary parameters packed into uint32 words (LSB first) plus the sizes, for C export."""
        return {
            "dim": int(self.dim), "num_levels": int(self.num_levels), "num_features": int(self.n_features_in_),
            "num_classes": len(self.classes_), "classes": self.classes_.tolist(),
            "value_words": pack_bits(self.value_bits_), "feature_words": pack_bits(self.feature_bits_),
            "class_words": pack_bits(self.class_bits_),
        }

    @property
    def model_bytes_(self) -> int:
        """Bytes of packed binary parameters: (levels + features + classes) x ceil(D/32) x 4."""
        words = -(-int(self.dim) // 32)
        return (self.num_levels + self.n_features_in_ + len(self.classes_)) * words * 4
