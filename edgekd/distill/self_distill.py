"""Repeated self-distillation (Pareek, Du, Oh; NeurIPS 2024, arXiv 2407.04600).

Linear regression with a ridge teacher. Step ``k``'s student minimises

    xi_k ||X theta_{k-1} - X theta||^2 + (1 - xi_k) ||y - X theta||^2 + lam ||theta||^2,

so ``theta_k = (X^T X + lam I)^{-1} X^T (xi_k X theta_{k-1} + (1 - xi_k) y)`` with ``theta_0`` the
ridge solution. With the thin SVD ``X = U S V^T`` and the ridge shrinkage ``r = s^2 / (s^2 + lam)``
one step acts on the coordinates ``a = V^T theta`` as ``a_k = xi_k r a_{k-1} + (1 - xi_k) a_0``,
where ``a_0 = s / (s^2 + lam) * U^T y`` is ridge. Writing ``a_k = g_k(r) a_0`` gives
``g_0 = 1`` and ``g_k = xi_k r g_{k-1} + 1 - xi_k``, i.e. (derivation in docs/selfdistill.md)

    g_k(r) = 1 - (1 - r) * sum_{j=1..k} p_j r^{j-1},   p_j = xi_k xi_{k-1} ... xi_{k-j+1},

so ``theta_k = V diag(g_k(r) s / (s^2 + lam)) U^T y``: a spectral filter, a degree-k polynomial in
the shrinkage, LINEAR in the products ``p``. Any prediction error (validation error, or the
fixed-design excess risk) is therefore a quadratic in ``p``, minimised exactly by least squares;
the xi's follow back as ``xi_k = p_1`` and ``xi_{k-j} = p_{j+1} / p_j``.

The second half of the file runs the experiments behind ``edgekd selfdistill``: tuned ridge vs
1-, 2- and k-step SD on regression tables, the synthetic fixed-design case where the paper's
conditions hold and cases where they do not, and repeated self-distillation of small networks
(generation g+1 distilled from generation g through the ``distill`` verb).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..config import Config, register
from ..errors import ConfigError
from ..log import logger, set_log_level

# ---------------------------------------------------------------------------------------------
# Maths: small pure functions
# ---------------------------------------------------------------------------------------------


def ridge(X, y, lam):
    """Ridge teacher, Pareek et al. eq. (2): theta_0 = (X^T X + lam I)^{-1} X^T y."""
    X, y = np.asarray(X, float), np.asarray(y, float)
    d = X.shape[1]
    return np.linalg.solve(X.T @ X + lam * np.eye(d), X.T @ y)


def self_distill_step(X, y, theta_prev, lam, xi):
    """One SD step, Pareek et al. eq. (3): ridge fit to the targets xi X theta_prev + (1 - xi) y."""
    X = np.asarray(X, float)
    return ridge(X, xi * (X @ theta_prev) + (1.0 - xi) * np.asarray(y, float), lam)


def self_distill_steps(X, y, lam, xis):
    """k-step SD run one step at a time (xis[0] is step 1's xi); no xis gives ridge."""
    theta = ridge(X, y, lam)
    for xi in xis:
        theta = self_distill_step(X, y, theta, lam, xi)
    return theta


def shrinkage(s, lam):
    """Ridge shrinkage of each singular direction: r = s^2 / (s^2 + lam)."""
    s = np.asarray(s, float)
    return s**2 / (s**2 + lam)


def xis_to_products(xis):
    """Re-parameterisation p_j = xi_k xi_{k-1} ... xi_{k-j+1} (j = 1..k) in which the filter is linear."""
    xis = np.asarray(xis, float)
    return np.cumprod(xis[::-1]) if len(xis) else np.zeros(0)


def products_to_xis(p, tol=1e-12):
    """Map products back to xis (xi_k = p_1, xi_{k-j} = p_{j+1} / p_j); None if some p_j = 0 < |p_{j+1}|."""
    p = np.asarray(p, float)
    k = len(p)
    xis = np.zeros(k)
    prev = 1.0
    for j in range(k):  # xis[k-1-j] is the xi of step k-j
        if abs(prev) <= tol:
            if np.any(np.abs(p[j:]) > tol):
                return None  # the filter needs an infinite xi: not reachable by sequential SD
            xis[k - 1 - j] = 0.0
            continue
        xis[k - 1 - j] = p[j] / prev
        prev = p[j]
    return xis


def filter_basis(r, k):
    """Columns (1 - r) r^{j-1}, j = 1..k: g_k(r) = 1 - basis @ p (the derivation in the module docstring)."""
    r = np.asarray(r, float)
    return (1.0 - r)[:, None] * r[:, None] ** np.arange(k)[None, :]


def sd_gain(r, p):
    """g_k(r) = 1 - (1 - r) sum_j p_j r^{j-1}: the k-step filter relative to ridge."""
    return 1.0 - filter_basis(r, len(p)) @ np.asarray(p, float)


def sd_filter(s, lam, xis):
    """Spectral filter f_k(s) = g_k(r) s / (s^2 + lam) with theta_k = V diag(f_k) U^T y."""
    s = np.asarray(s, float)
    return sd_gain(shrinkage(s, lam), xis_to_products(xis)) * s / (s**2 + lam)


def self_distill_closed_form(X, y, lam, xis, *, svd=None):
    """k-step SD through the SVD of X: theta_k = V diag(f_k(s)) U^T y (one SVD for any xis)."""
    U, s, Vt = svd if svd is not None else np.linalg.svd(np.asarray(X, float), full_matrices=False)
    return Vt.T @ (sd_filter(s, lam, xis) * (U.T @ np.asarray(y, float)))


def self_distill_products(X, y, lam, p, *, svd=None):
    """Like ``self_distill_closed_form`` but from the products p (covers filters with no finite xis)."""
    U, s, Vt = svd if svd is not None else np.linalg.svd(np.asarray(X, float), full_matrices=False)
    r = shrinkage(s, lam)
    return Vt.T @ (sd_gain(r, p) * s / (s**2 + lam) * (U.T @ np.asarray(y, float)))


def _validation_design(svd, y, X_val, lam, k):
    """Ridge prediction on X_val and the matrix M with SD prediction = ridge prediction - M p."""
    U, s, Vt = svd
    a0 = s / (s**2 + lam) * (U.T @ y)  # ridge in V coordinates
    B = X_val @ Vt.T
    r = shrinkage(s, lam)
    return B @ a0, B @ (a0[:, None] * filter_basis(r, k))


def solve_products(M, b, *, xi_range="any"):
    """Exact minimiser of ||b - M p||^2 over p; ``xi_range='unit'`` keeps every xi in [0, 1].

    xi in [0, 1] for all steps is the polytope 1 >= p_1 >= ... >= p_k >= 0; there we write
    p_j = sum_{i>=j} q_i with q >= 0, sum q <= 1 and solve the small convex QP with SLSQP.
    """
    k = M.shape[1]
    if k == 0:
        return np.zeros(0)
    p, *_ = np.linalg.lstsq(M, b, rcond=None)
    if xi_range == "any":
        return p
    if xi_range != "unit":
        raise ConfigError(f"xi_range: allowed values are 'any', 'unit', got {xi_range!r}")
    xis = products_to_xis(p)
    if xis is not None and np.all((xis >= 0) & (xis <= 1)):
        return p
    from scipy.optimize import minimize

    T = np.triu(np.ones((k, k)))  # p = T q
    A = M @ T
    q0 = np.full(k, 0.5 / k)
    res = minimize(lambda q: float(np.sum((A @ q - b) ** 2)), q0, jac=lambda q: 2 * A.T @ (A @ q - b),
                   method="SLSQP", bounds=[(0.0, 1.0)] * k,
                   constraints=[{"type": "ineq", "fun": lambda q: 1.0 - q.sum(), "jac": lambda q: -np.ones(k)}],
                   options={"ftol": 1e-14, "maxiter": 500})
    return T @ np.clip(res.x, 0.0, 1.0)


def fit_products(X, y, X_val, y_val, lam, k, *, xi_range="any", svd=None):
    """Validation-optimal products p for k-step SD at ``lam``: the validation error is quadratic in p."""
    svd = svd if svd is not None else np.linalg.svd(np.asarray(X, float), full_matrices=False)
    base, M = _validation_design(svd, np.asarray(y, float), np.asarray(X_val, float), lam, k)
    return solve_products(M, base - np.asarray(y_val, float), xi_range=xi_range)


def select_xis(X, y, X_val, y_val, lam, k, *, xi_range="any", svd=None):
    """Validation-optimal xis for k-step SD at ``lam`` (exact least squares in the products, then mapped back)."""
    p = fit_products(X, y, X_val, y_val, lam, k, xi_range=xi_range, svd=svd)
    return products_to_xis(p), p


def cv_products_error(base, M, y_val, folds, *, xi_range="any"):
    """Held-out error of fitting p on the validation rows, by folds of those rows (picks lam and k)."""
    err = 0.0
    for f in folds:
        keep = np.ones(len(y_val), bool)
        keep[f] = False
        p = solve_products(M[keep], base[keep] - y_val[keep], xi_range=xi_range)
        err += float(np.sum((base[f] - M[f] @ p - y_val[f]) ** 2))
    return err / len(y_val)


def expected_excess_risk(s, w_star, sigma, lam, p, n):
    """Fixed-design excess risk E||X(theta_hat - theta*)||^2 / n of k-step SD (Pareek et al. Sec. 4).

    In V coordinates theta_hat_i = g_i r_i w*_i + g_i s_i/(s_i^2+lam) eps_i, eps_i ~ N(0, sigma^2).
    """
    s, w = np.asarray(s, float), np.asarray(w_star, float)
    r = shrinkage(s, lam)
    g = sd_gain(r, p)
    bias = (g * r - 1.0) * w
    var = g * s / (s**2 + lam) * sigma
    return float(np.sum(s**2 * (bias**2 + var**2)) / n)


def oracle_products(s, w_star, sigma, lam, k, n):
    """Products p minimising ``expected_excess_risk`` exactly (weighted least squares in p)."""
    s, w = np.asarray(s, float), np.asarray(w_star, float)
    r = shrinkage(s, lam)
    Phi = filter_basis(r, k)
    c = s / math.sqrt(n)
    d = c * s / (s**2 + lam) * sigma
    # bias term: c w (g r - 1) = c w (r - 1) - c w r Phi p ; variance term: d g = d - d Phi p
    A = np.vstack([(c * w * r)[:, None] * Phi, d[:, None] * Phi])
    b = np.concatenate([c * w * (r - 1.0), d])
    return np.linalg.lstsq(A, b, rcond=None)[0] if k else np.zeros(0)


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------


@register("self_distill")
@dataclass
class SelfDistillConfig(Config):
    splits: int = 20  # random train/val/test splits (seeds 0..splits-1)
    max_k: int = 5  # sdk picks k in 1..max_k on validation
    val_frac: float = 0.2
    test_frac: float = 0.2
    # lam = c * n_train for c in this grid (features are standardised, so X^T X ~ n * correlation)
    lam_grid: list[float] = field(default_factory=lambda: [float(c) for c in np.logspace(-5, 2, 29)])
    cv_folds: int = 5  # folds of the validation rows used to pick lam and k for SD
    ridge_folds: int = 5  # folds of the train rows used to pick ridge's lam (cross-validation)
    xi_range: Literal["any", "unit"] = "any"  # 'unit' keeps each xi in [0, 1]
    sd_lam: Literal["cv", "ridge"] = "cv"  # SD's lam: own choice (cv) or the lam tuned for ridge

    def validate(self):
        if self.splits < 1:
            raise ConfigError(f"SelfDistillConfig.splits: must be >= 1, got {self.splits}")
        if not 1 <= self.max_k <= 20:
            raise ConfigError(f"SelfDistillConfig.max_k: must be in 1..20, got {self.max_k}")
        if not self.lam_grid or any(not c > 0 for c in self.lam_grid):
            raise ConfigError(f"SelfDistillConfig.lam_grid: needs positive values, got {self.lam_grid}")
        if self.cv_folds < 2:
            raise ConfigError(f"SelfDistillConfig.cv_folds: must be >= 2, got {self.cv_folds}")
        if self.ridge_folds < 2:
            raise ConfigError(f"SelfDistillConfig.ridge_folds: must be >= 2, got {self.ridge_folds}")


# ---------------------------------------------------------------------------------------------
# Experiments: regression tables
# ---------------------------------------------------------------------------------------------


def _mse(a, b):
    return float(np.mean((np.asarray(a) - np.asarray(b)) ** 2))


def unit_folds(n, k, rng, groups=None):
    """``k`` folds of ``range(n)`` (index arrays); with ``groups`` every unit falls in one fold."""
    if groups is None:
        return np.array_split(rng.permutation(n), k)
    _, unit = np.unique(groups, return_inverse=True)
    fold_of_unit = rng.permutation(unit.max() + 1) % k
    return [np.flatnonzero(fold_of_unit[unit] == f) for f in range(k)]


def ridge_cv_coef(X, y, coefs, folds):
    """The c of ``lam = c * n_fit`` with the lowest K-fold cross-validated squared error on (X, y)."""
    err = np.zeros(len(coefs))
    for f in folds:
        keep = np.ones(len(y), bool)
        keep[f] = False
        U, s, Vt = np.linalg.svd(X[keep], full_matrices=False)
        uty, B, n_fit = U.T @ y[keep], X[f] @ Vt.T, int(keep.sum())
        for i, c in enumerate(coefs):
            err[i] += float(np.sum((B @ (s / (s**2 + c * n_fit) * uty) - y[f]) ** 2))
    return float(coefs[int(np.argmin(err))])


def spectral_diagnostic(s, Vt, theta, lam, tops=(1, 3)):
    """Where the theory's conditions for an SD gain can be read off (Pareek et al. Sec. 4).

    ``s`` (descending) and ``Vt`` are the design's singular values and right singular vectors,
    ``theta`` an estimate (the tuned ridge solution), ``lam`` its penalty. Returns the spread of
    the singular values (largest / smallest, smallest relative gap between neighbours), the
    fraction of ``||theta||^2`` along the top-1 / top-3 singular directions and along the single
    direction holding most, and the weakest direction's ridge shrinkage ``r = s^2 / (s^2 + lam)``
    (a filter can only act where ``r < 1``: when all r are ~1 ridge is ~least squares and no
    k-step filter differs from it much).
    """
    s = np.asarray(s, float)
    a2 = (np.asarray(Vt, float) @ np.asarray(theta, float)) ** 2
    total = float(a2.sum())
    frac = a2 / total if total > 0 else np.zeros_like(a2)
    gaps = (s[:-1] - s[1:]) / s[:-1] if len(s) > 1 else np.zeros(0)
    out = {"condition": float(s[0] / s[-1]) if s[-1] > 0 else math.inf,
           "min_relative_gap": float(gaps.min()) if len(gaps) else 0.0,
           "max_direction_fraction": float(frac.max()), "max_direction": int(np.argmax(frac)),
           "shrinkage_min": float(shrinkage(s, lam).min())}
    for t in tops:
        out[f"top{t}_fraction"] = float(frac[:t].sum())
    return out


def plugin_oracle(X, y, lams, k=2, *, svd=None):
    """Fixed-design excess risk of tuned ridge and of k-step SD with oracle xis, taking the least
    squares fit of (X, y) as theta* and its residual variance as sigma^2 (Pareek et al.'s setting
    with plug-in values). ``ratio`` is the part of ridge's excess risk that k-step SD keeps at best,
    ``ridge_over_noise`` ridge's excess risk relative to the noise, and ``best_mse_gain`` the
    relative cut of the prediction MSE (noise + excess risk) that the oracle xis would give."""
    U, s, Vt = svd if svd is not None else np.linalg.svd(np.asarray(X, float), full_matrices=False)
    n, d = X.shape
    w = (U.T @ y) / s  # least squares in V coordinates
    sigma2 = float(np.sum((y - U @ (U.T @ y)) ** 2) / max(n - d, 1))
    sigma = math.sqrt(sigma2)
    ridge_risk = min(expected_excess_risk(s, w, sigma, lam, np.zeros(0), n) for lam in lams)
    sd_risk = min(expected_excess_risk(s, w, sigma, lam, oracle_products(s, w, sigma, lam, k, n), n) for lam in lams)
    return {"sigma2": sigma2, "ridge_excess": ridge_risk, f"sd{k}_excess": sd_risk,
            "ratio": sd_risk / ridge_risk if ridge_risk > 0 else 1.0, "ridge_over_noise": ridge_risk / sigma2,
            # prediction MSE = noise + excess risk: the largest relative MSE cut the oracle filter gives
            "best_mse_gain": (ridge_risk - sd_risk) / (sigma2 + ridge_risk)}


def _ridge_with_intercept(X, y, lam):
    """Ridge on centred copies of (X, y) plus the intercept that centring removed."""
    mx, my = X.mean(axis=0), float(y.mean())
    theta = ridge(X - mx, y - my, lam)
    return theta, my - float(mx @ theta)


def fit_split(data, config: SelfDistillConfig, seed=0) -> dict:
    """Tuned ridge, sd1, sd2 and sdk on one TabularSplits; returns test MSEs and the chosen settings.

    Ridge (the teacher): lam = c * n_train with c picked by K-fold cross-validation on the train
    rows only. SD (k steps): for every lam the xis are the exact validation least-squares solution;
    lam (and k for sdk) are picked by the held-out error of that fit across folds of the validation
    rows (the in-sample validation error always prefers the largest k, since the k-step filters
    contain the (k-1)-step ones); xis are then refit on all validation rows. With
    ``config.sd_lam == 'ridge'`` SD keeps ridge's lam and only k is picked that way.
    ``ridge_trainval`` is a reference with the rows SD sees: ridge refit on train + validation,
    its lam by cross-validation there. Folds respect the table's units (``groups_*``) if it has any.
    The test rows are used for nothing but the reported MSEs.
    """
    X, y, Xv, yv, Xt, yt = data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test
    n = len(y)
    rng = np.random.default_rng(seed)
    svd = np.linalg.svd(X, full_matrices=False)
    coefs = np.asarray(config.lam_grid, float)
    lams = [c * n for c in coefs]

    lam_r = ridge_cv_coef(X, y, coefs, unit_folds(n, config.ridge_folds, rng, data.groups_train)) * n
    theta_r = self_distill_products(X, y, lam_r, [], svd=svd)
    out = {"ridge": {"test_mse": _mse(Xt @ theta_r, yt), "val_mse": _mse(Xv @ theta_r, yv), "lam": lam_r}}

    Xtv, ytv = np.vstack([X, Xv]), np.concatenate([y, yv])
    gtv = None if data.groups_train is None else np.concatenate([data.groups_train, data.groups_val])
    lam_tv = ridge_cv_coef(Xtv, ytv, coefs, unit_folds(len(ytv), config.ridge_folds, rng, gtv)) * len(ytv)
    theta_tv, b_tv = _ridge_with_intercept(Xtv, ytv, lam_tv)
    out["ridge_trainval"] = {"test_mse": _mse(Xt @ theta_tv + b_tv, yt), "lam": lam_tv}

    folds = unit_folds(len(yv), config.cv_folds, rng, data.groups_val)
    if config.sd_lam == "ridge":
        lams = [lam_r]
    cv = np.zeros((len(lams), config.max_k))
    for i, lam in enumerate(lams):
        base, M = _validation_design(svd, y, Xv, lam, config.max_k)
        for k in range(1, config.max_k + 1):
            cv[i, k - 1] = cv_products_error(base, M[:, :k], yv, folds, xi_range=config.xi_range)

    def fit(k, i):
        lam = lams[i]
        p = fit_products(X, y, Xv, yv, lam, k, xi_range=config.xi_range, svd=svd)
        xis = products_to_xis(p)
        # sequential SD with the mapped-back xis when they exist (the same estimator as the filter)
        theta = self_distill_closed_form(X, y, lam, xis, svd=svd) if xis is not None else \
            self_distill_products(X, y, lam, p, svd=svd)
        return {"test_mse": _mse(Xt @ theta, yt), "val_mse": _mse(Xv @ theta, yv), "lam": lam, "k": k,
                "xis": None if xis is None else xis.tolist(), "products": p.tolist(),
                "xi_in_unit": bool(xis is not None and np.all((xis >= -1e-9) & (xis <= 1 + 1e-9)))}

    for k in (1, 2):
        if k <= config.max_k:
            out[f"sd{k}"] = fit(k, int(np.argmin(cv[:, k - 1])))
    i, kk = np.unravel_index(int(np.argmin(cv)), cv.shape)
    out["sdk"] = fit(int(kk) + 1, int(i))
    out["diagnostic"] = {**spectral_diagnostic(svd[1], svd[2], theta_r, lam_r),
                         "singular_values": (svd[1] / math.sqrt(n)).tolist(),
                         "plugin": plugin_oracle(X, y, [c * n for c in coefs], svd=svd)}
    return out


def _summary(values):
    v = np.asarray(values, float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}


def _verdict(low, high):
    return "better" if low > 0 else "worse" if high < 0 else "no difference"


def _mean_diagnostic(diags):
    """Each number averaged over the splits (lists element-wise); for ``max_direction`` how often
    each singular direction was the one holding most of the ridge solution."""
    out = {}
    for key, first in diags[0].items():
        values = [d[key] for d in diags]
        if key == "max_direction":
            out[key] = {str(i): values.count(i) for i in sorted(set(values))}
        elif isinstance(first, dict):
            out[key] = _mean_diagnostic(values)
        else:
            out[key] = np.mean(np.asarray(values, float), axis=0).tolist()
    return out


def tabular_experiment(name, config: SelfDistillConfig | None = None, *, verbose=None) -> dict:
    """Test MSE of tuned ridge, sd1, sd2, sdk on ``config.splits`` random splits of a shipped table.

    Every method's ``gain`` is the paired difference ridge - method over the splits (positive:
    the method has the lower test MSE) with its 95% t-interval, and ``verdict`` reads that
    interval ('better' when it lies above zero, 'worse' below, else 'no difference').
    """
    from ..data.tabular import load_table, split_table
    from ..stats import paired_ci

    set_log_level(verbose)
    config = config or SelfDistillConfig()
    table = load_table(name)
    runs = []
    for seed in range(config.splits):
        data = split_table(table.x, table.y, seed=seed, val_frac=config.val_frac, test_frac=config.test_frac,
                           name=name, feature_names=table.feature_names, groups=table.groups)
        runs.append(fit_split(data, config, seed=seed))
        logger.info(f"{name} split {seed}: " + "  ".join(f"{m} {r['test_mse']:.3f}" for m, r in runs[-1].items()
                                                            if m != "diagnostic"))
    methods = {}
    ridge_mse = np.array([r["ridge"]["test_mse"] for r in runs])
    for m in (m for m in runs[0] if m != "diagnostic"):
        mse = np.array([r[m]["test_mse"] for r in runs])
        methods[m] = _summary(mse)
        if m != "ridge":
            row = {"mean": float(np.mean(ridge_mse - mse)), "std": float(np.std(ridge_mse - mse, ddof=1)) if len(mse) > 1 else 0.0,
                   "wins": int(np.sum(mse < ridge_mse)), "relative": float(np.mean(ridge_mse - mse) / ridge_mse.mean())}
            if len(mse) > 1:
                _, low, high = paired_ci(ridge_mse, mse)
                row |= {"ci95": [low, high], "verdict": _verdict(low, high)}
            methods[m]["gain"] = row
        if m.startswith("sd"):
            methods[m]["xi_outside_unit"] = int(sum(not r[m]["xi_in_unit"] for r in runs))
    ks = [r["sdk"]["k"] for r in runs]
    methods["sdk"]["k"] = {str(k): ks.count(k) for k in sorted(set(ks))}
    return {"dataset": name, "n": int(len(table.y)), "d": int(table.x.shape[1]), "target": table.target,
            "target_std": float(table.y.std()), "grouped": table.groups is not None,
            "config": config.to_dict(), "methods": methods,
            "diagnostic": _mean_diagnostic([r["diagnostic"] for r in runs]), "per_split": runs}


# ---------------------------------------------------------------------------------------------
# Experiments: synthetic fixed design
# ---------------------------------------------------------------------------------------------


def synthetic_design(n, d, *, singular_values, alignment, seed=0):
    """X = U diag(s) V^T with the given singular values; theta* = V w* with w* = e_1 ('eigenvector')
    or spread evenly over all right singular vectors ('spread'), ||theta*|| = 1."""
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((n, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    s = np.asarray(singular_values, float)
    if alignment == "eigenvector":
        w = np.zeros(d)
        w[0] = 1.0
    elif alignment == "spread":
        w = np.ones(d) / math.sqrt(d)
    else:
        raise ConfigError(f"alignment: allowed values are 'eigenvector', 'spread', got {alignment!r}")
    return U @ np.diag(s) @ V.T, V @ w, s, w


SYNTHETIC_CASES = {
    # name: (singular values as a function of (n, d), alignment, do the paper's conditions hold?)
    "distinct+aligned": (lambda n, d: math.sqrt(n) * np.geomspace(2.0, 0.25, d), "eigenvector", True),
    "distinct+spread": (lambda n, d: math.sqrt(n) * np.geomspace(2.0, 0.25, d), "spread", False),
    "equal+aligned": (lambda n, d: math.sqrt(n) * np.ones(d), "eigenvector", False),
}


def synthetic_experiment(*, n=100, d=8, sigma=2.0, max_k=None, draws=200, lam_grid=None, seed=0,
                         verbose=None) -> dict:
    """Excess risk of ridge (k=0) and k-step SD on a fixed design, per case of SYNTHETIC_CASES.

    'oracle': xis and lam minimising the exact expected excess risk (the paper's theorem setting).
    'validation': xis fitted on an independent noise draw y' = X theta* + eps' (same X), lam from
    the same validation error; excess risk ||X(theta_hat - theta*)||^2 / n averaged over ``draws``.
    """
    set_log_level(verbose)
    max_k = d if max_k is None else max_k
    if max_k < 0:
        raise ConfigError(f"max_k: must be >= 0, got {max_k}")
    lams = [c * n for c in (lam_grid or np.logspace(-4, 2, 49))]
    rng = np.random.default_rng(seed + 1)
    out = {"n": n, "d": d, "sigma": sigma, "draws": draws, "cases": {}}
    for name, (sv, alignment, holds) in SYNTHETIC_CASES.items():
        X, theta_star, s, w = synthetic_design(n, d, singular_values=sv(n, d), alignment=alignment, seed=seed)
        oracle = []
        for k in range(max_k + 1):
            risks = [expected_excess_risk(s, w, sigma, lam, oracle_products(s, w, sigma, lam, k, n), n) for lam in lams]
            oracle.append(float(min(risks)))
        svd = np.linalg.svd(X, full_matrices=False)
        practical = np.zeros(max_k + 1)
        for _ in range(draws):
            y = X @ theta_star + sigma * rng.standard_normal(n)
            yv = X @ theta_star + sigma * rng.standard_normal(n)
            for k in range(max_k + 1):
                best = None
                for lam in lams:
                    base, M = _validation_design(svd, y, X, lam, k)
                    p = solve_products(M, base - yv)
                    err = float(np.sum((base - M @ p - yv) ** 2))
                    if best is None or err < best[0]:
                        best = (err, lam, p)
                theta = self_distill_products(X, y, best[1], best[2], svd=svd)
                practical[k] += float(np.sum((X @ (theta - theta_star)) ** 2)) / n / draws
        out["cases"][name] = {"conditions_hold": holds, "singular_values": s.tolist(), "w_star": w.tolist(),
                              "oracle": oracle, "validation": practical.tolist()}
        logger.info(f"synthetic {name}: oracle " + " ".join(f"{v:.4f}" for v in oracle))
    return out


# ---------------------------------------------------------------------------------------------
# Experiments: repeated self-distillation of networks
# ---------------------------------------------------------------------------------------------


def network_generations(data, model_config, *, generations=3, alpha=0.5, config=None, seed=0,
                        verbose=None) -> list:
    """Generation 0 trained on labels; generation g+1 (same architecture, fresh init) distilled from
    generation g with a constant alpha through ``distill``. Returns accuracy per generation."""
    import torch

    from ..models import build_model
    from .config import AlphaSchedule, KDConfig, train_config
    from .trainer import distill, evaluate

    set_log_level(verbose)
    if generations < 1:
        raise ConfigError(f"generations: must be >= 1, got {generations}")
    base = config or KDConfig(epochs=5, seed=seed)
    rows, teacher = [], None
    for g in range(generations):
        torch.manual_seed(seed * 1000 + g)
        student = build_model(model_config)
        if teacher is None:
            cfg = train_config(**{k: v for k, v in vars(base).items() if k not in ("alpha", "curriculum")})
        else:
            cfg = base.replace(alpha=AlphaSchedule("constant", alpha, alpha), curriculum=None)
        distill(teacher, student, data, cfg)
        rows.append({"generation": g, "val_accuracy": evaluate(student, data.val),
                     "test_accuracy": evaluate(student, data.test)})
        logger.info(f"generation {g}: test accuracy {rows[-1]['test_accuracy']:.4f}")
        teacher = student
    return rows
