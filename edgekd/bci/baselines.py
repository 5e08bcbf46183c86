"""Baselines for motor-imagery classification.

- CSP + LDA (Ramoser et al. 2000; the classic BCI pipeline): MNE's CSP log-variances into
  scikit-learn's linear discriminant.
- Random-projection HDC (Kanerva 2009; Rahimi et al. 2016 style): features -> sign of a random
  bipolar projection to D = 10,000 -> class prototypes by bundling (with a few perceptron-style
  retraining passes) -> nearest prototype by Hamming distance. Shows what LDC's tiny D saves.
"""
from __future__ import annotations

import numpy as np

from ..errors import DataError


class CSPLDA:
    """CSP log-variance features (MNE) followed by LDA (scikit-learn), on (N, C, T) epochs."""

    def __init__(self, n_components=4):
        self.n_components = n_components

    def fit(self, x, y):
        import mne
        from mne.decoding import CSP
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        with mne.utils.use_log_level("error"):
            self.csp_ = CSP(n_components=self.n_components, log=True, reg="ledoit_wolf").fit(np.asarray(x, float), y)
            self.lda_ = LinearDiscriminantAnalysis().fit(self.csp_.transform(np.asarray(x, float)), y)
        return self

    def predict(self, x):
        import mne

        with mne.utils.use_log_level("error"):
            return self.lda_.predict(self.csp_.transform(np.asarray(x, float)))

    def score(self, x, y):
        return float((self.predict(x) == np.asarray(y)).mean())

    @property
    def model_bytes_(self) -> int:
        """float32 spatial filters (components x channels) + LDA weights and intercepts."""
        filters = self.n_components * self.csp_.filters_.shape[1]
        lda = self.lda_.coef_.size + self.lda_.intercept_.size
        return 4 * (filters + lda)


def hdc_encode(x, projection):
    """Bipolar hypervectors: sign(x @ P) with sign(0) = +1 (P bipolar (F, D))."""
    return np.where(x @ projection < 0, -1, 1).astype(np.int8)


class RandomProjectionHDC:
    """Classic HDC with a random bipolar projection encoder and binary class prototypes."""

    def __init__(self, dim=10_000, retrain_epochs=10, seed=0):
        self.dim, self.retrain_epochs, self.seed = dim, retrain_epochs, seed

    def fit(self, X, y):
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise DataError(f"RandomProjectionHDC: expected (N, features), got {X.shape}")
        rng = np.random.default_rng(self.seed)
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        self.mean_, self.std_ = X.mean(0), X.std(0) + 1e-6
        self.projection_ = np.where(rng.random((X.shape[1], self.dim)) < 0.5, -1, 1).astype(np.float32)
        H = hdc_encode((X - self.mean_) / self.std_, self.projection_).astype(np.int32)
        acc = np.zeros((len(self.classes_), self.dim), dtype=np.int64)
        np.add.at(acc, y_enc, H)
        for _ in range(self.retrain_epochs):  # OnlineHD-style: move misclassified samples
            pred = (H @ np.where(acc < 0, -1, 1).T).argmax(1)
            wrong = pred != y_enc
            if not wrong.any():
                break
            np.add.at(acc, y_enc[wrong], H[wrong])
            np.add.at(acc, pred[wrong], -H[wrong])
        self.class_vectors_ = np.where(acc < 0, -1, 1).astype(np.int8)
        return self

    def predict(self, X):
        H = hdc_encode((np.asarray(X, np.float32) - self.mean_) / self.std_, self.projection_).astype(np.int32)
        return self.classes_[(H @ self.class_vectors_.T.astype(np.int32)).argmax(1)]

    def score(self, X, y):
        return float((self.predict(X) == np.asarray(y)).mean())

    @property
    def model_bytes_(self) -> int:
        """Bit-packed projection (F x D) and class vectors (C x D), plus float32 feature scaling."""
        F = self.projection_.shape[0]
        return (F * self.dim + len(self.classes_) * self.dim) // 8 + 4 * 2 * F
