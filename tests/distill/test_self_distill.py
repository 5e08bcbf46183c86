"""Repeated self-distillation: closed form vs iterated steps, exact xi selection, experiments."""
import json

import numpy as np
import pytest

from edgekd.distill.self_distill import (
    SelfDistillConfig, expected_excess_risk, filter_basis, fit_products, fit_split, network_generations,
    oracle_products, plugin_oracle, products_to_xis, ridge, ridge_cv_coef, sd_gain, select_xis,
    self_distill_closed_form, self_distill_products, self_distill_step, self_distill_steps, shrinkage,
    solve_products, spectral_diagnostic, synthetic_design, synthetic_experiment, unit_folds, xis_to_products)


def _problem(n=40, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) @ np.diag(np.linspace(0.3, 2.0, d))
    theta = rng.standard_normal(d)
    return X, X @ theta + 0.5 * rng.standard_normal(n), rng


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("lam", [0.05, 1.0, 30.0])
def test_closed_form_equals_iterated_steps(k, lam):
    X, y, rng = _problem(seed=k)
    for _ in range(3):
        xis = rng.uniform(-1.5, 2.0, size=k)
        iterated = self_distill_steps(X, y, lam, xis)
        closed = self_distill_closed_form(X, y, lam, xis)
        assert np.max(np.abs(iterated - closed)) < 1e-8 * max(1.0, np.max(np.abs(iterated)))


def test_closed_form_with_more_features_than_rows():
    X, y, rng = _problem(n=5, d=9, seed=3)
    xis = rng.uniform(0, 1, size=3)
    np.testing.assert_allclose(self_distill_closed_form(X, y, 0.5, xis), self_distill_steps(X, y, 0.5, xis),
                               atol=1e-10)


def test_zero_steps_is_ridge_and_ridge_matches_sklearn():
    from sklearn.linear_model import Ridge

    X, y, _ = _problem()
    for lam in (0.01, 2.0, 100.0):
        ref = Ridge(alpha=lam, fit_intercept=False, solver="cholesky").fit(X, y).coef_
        np.testing.assert_allclose(ridge(X, y, lam), ref, atol=1e-10)
        np.testing.assert_allclose(self_distill_closed_form(X, y, lam, []), ref, atol=1e-10)
        np.testing.assert_allclose(self_distill_steps(X, y, lam, []), ref, atol=1e-10)


def test_xi_one_keeps_the_teacher_and_xi_zero_is_ridge_again():
    X, y, _ = _problem()
    teacher = ridge(X, y, 3.0)
    # xi = 0: labels only -> ridge again; the filter with xi = 1 is r * ridge (the teacher re-ridged)
    np.testing.assert_allclose(self_distill_step(X, y, teacher, 3.0, 0.0), teacher, atol=1e-12)
    np.testing.assert_allclose(self_distill_step(X, y, teacher, 3.0, 1.0), ridge(X, X @ teacher, 3.0), atol=1e-12)


def test_filter_polynomial_matches_recurrence():
    rng = np.random.default_rng(1)
    r = rng.uniform(0, 1, size=7)
    for k in range(6):
        xis = rng.uniform(-2, 2, size=k)
        g = np.ones_like(r)
        for xi in xis:  # g_k = xi_k r g_{k-1} + 1 - xi_k
            g = xi * r * g + 1 - xi
        np.testing.assert_allclose(sd_gain(r, xis_to_products(xis)), g, atol=1e-12)
        assert np.allclose(sd_gain(np.ones(1), xis_to_products(xis)), 1.0)  # g_k(1) = 1 for every xi


def test_products_round_trip_and_unreachable_filter():
    rng = np.random.default_rng(2)
    xis = rng.uniform(-3, 3, size=5)
    np.testing.assert_allclose(products_to_xis(xis_to_products(xis)), xis, rtol=1e-12)
    assert products_to_xis(np.array([0.0, 0.5])) is None  # p_1 = 0 but p_2 != 0: no finite xis
    np.testing.assert_allclose(products_to_xis(np.array([0.5, 0.0])), [0.0, 0.5])


def _val_error(X, y, Xv, yv, lam, xis):
    return float(np.mean((Xv @ self_distill_steps(X, y, lam, xis) - yv) ** 2))


def test_xi_solver_recovers_grid_optimum_k1():
    rng = np.random.default_rng(4)
    X, y, _ = _problem(n=25, d=4, seed=4)
    Xv = rng.standard_normal((15, 4))
    yv = Xv @ rng.standard_normal(4) + 0.3 * rng.standard_normal(15)
    lam = 5.0
    (xi,), p = select_xis(X, y, Xv, yv, lam, 1)
    grid = np.linspace(xi - 3, xi + 3, 60001)  # fine grid around (and far beyond) the solution
    errs = [_val_error(X, y, Xv, yv, lam, [g]) for g in grid[::100]]
    assert _val_error(X, y, Xv, yv, lam, [xi]) <= min(errs) + 1e-12
    fine = np.linspace(-20, 20, 40001)
    errs = np.array([_val_error(X, y, Xv, yv, lam, [g]) for g in fine])
    assert abs(fine[np.argmin(errs)] - xi) <= 1.5e-3
    assert _val_error(X, y, Xv, yv, lam, [xi]) <= errs.min() + 1e-12


def test_xi_solver_k2_beats_every_grid_point():
    rng = np.random.default_rng(5)
    X, y, _ = _problem(n=25, d=4, seed=5)
    Xv = rng.standard_normal((15, 4))
    yv = Xv @ rng.standard_normal(4) + 0.3 * rng.standard_normal(15)
    xis, p = select_xis(X, y, Xv, yv, 2.0, 2)
    best = _val_error(X, y, Xv, yv, 2.0, xis)
    grid = np.linspace(-4, 4, 81)
    for a in grid:
        for b in grid:
            assert best <= _val_error(X, y, Xv, yv, 2.0, [a, b]) + 1e-10


def test_unit_range_solution_stays_in_unit_interval_and_is_grid_optimal():
    rng = np.random.default_rng(6)
    X, y, _ = _problem(n=25, d=4, seed=6)
    Xv = rng.standard_normal((15, 4))
    yv = -(Xv @ rng.standard_normal(4))  # unrelated target: unconstrained xis leave [0, 1]
    free = fit_products(X, y, Xv, yv, 1.0, 2)
    xis_free = products_to_xis(free)
    assert xis_free is None or np.any((xis_free < 0) | (xis_free > 1))
    xis, _ = select_xis(X, y, Xv, yv, 1.0, 2, xi_range="unit")
    assert np.all((xis >= -1e-9) & (xis <= 1 + 1e-9))
    best = _val_error(X, y, Xv, yv, 1.0, xis)
    grid = np.linspace(0, 1, 41)
    assert best <= min(_val_error(X, y, Xv, yv, 1.0, [a, b]) for a in grid for b in grid) + 1e-8
    with pytest.raises(ValueError, match="xi_range"):
        solve_products(np.eye(2), np.ones(2), xi_range="positive")


def test_expected_excess_risk_matches_monte_carlo():
    n, d, sigma, lam = 60, 5, 1.5, 20.0
    X, theta_star, s, w = synthetic_design(n, d, singular_values=np.sqrt(n) * np.geomspace(2, 0.3, d),
                                           alignment="spread", seed=1)
    p = np.array([0.7, -0.4])
    rng = np.random.default_rng(0)
    svd = np.linalg.svd(X, full_matrices=False)
    sims = []
    for _ in range(4000):
        y = X @ theta_star + sigma * rng.standard_normal(n)
        theta = self_distill_products(X, y, lam, p, svd=svd)
        sims.append(np.sum((X @ (theta - theta_star)) ** 2) / n)
    # the design's right singular vectors are V (signs may flip): use the SVD's own coordinates
    w_svd = svd[2] @ theta_star
    exact = expected_excess_risk(svd[1], w_svd, sigma, lam, p, n)
    assert abs(np.mean(sims) - exact) < 4 * np.std(sims) / np.sqrt(len(sims))


def test_oracle_products_minimise_the_expected_risk():
    n, d, sigma = 50, 4, 1.0
    s = np.sqrt(n) * np.array([2.0, 1.0, 0.5, 0.25])
    w = np.array([1.0, 0.0, 0.0, 0.0])
    p = oracle_products(s, w, sigma, 10.0, 2, n)
    best = expected_excess_risk(s, w, sigma, 10.0, p, n)
    rng = np.random.default_rng(0)
    for _ in range(200):
        assert best <= expected_excess_risk(s, w, sigma, 10.0, p + rng.normal(0, 0.3, 2), n) + 1e-12


def test_synthetic_reduction_only_where_the_conditions_hold():
    out = synthetic_experiment(n=60, d=5, sigma=2.0, draws=30, seed=0)
    aligned = out["cases"]["distinct+aligned"]
    # oracle xis: excess risk falls with k and ends well below tuned ridge (k = 0)
    assert all(b <= a + 1e-9 for a, b in zip(aligned["oracle"], aligned["oracle"][1:]))
    assert aligned["oracle"][-1] < 0.5 * aligned["oracle"][0]
    # xis fitted on a validation draw: 1-step SD still beats tuned ridge
    assert aligned["validation"][1] < aligned["validation"][0]
    for case in ("equal+aligned", "distinct+spread"):  # necessary conditions broken: no oracle gain
        oracle = out["cases"][case]["oracle"]
        assert min(oracle) > oracle[0] * (1 - 1e-3)


def test_tabular_split_standardised_on_train_only():
    from edgekd.data.tabular import load_tabular

    a = load_tabular("autompg", seed=0)
    b = load_tabular("autompg", seed=1)
    assert a.x_train.shape[1] == 8 and np.isfinite(a.x_train).all()
    np.testing.assert_allclose(a.x_train.mean(0), 0, atol=1e-10)
    np.testing.assert_allclose(a.x_train.std(0), 1, atol=1e-10)
    assert abs(a.y_train.mean()) < 1e-10 and abs(a.x_val.mean(0)).max() > 1e-3
    assert len(a.y_train) + len(a.y_val) + len(a.y_test) == 392
    assert not np.allclose(a.y_test, b.y_test[: len(a.y_test)])
    for name, d in (("boston", 13), ("diabetes", 10)):
        assert load_tabular(name, seed=0).num_features == d


def test_unknown_table_is_a_clear_error():
    from edgekd.data.tabular import load_tabular
    from edgekd.errors import DataError

    with pytest.raises(DataError, match="'dataset'.*autompg"):
        load_tabular("iris")


def test_fit_split_on_diabetes():
    from edgekd.data.tabular import load_tabular

    data = load_tabular("diabetes", seed=0)
    out = fit_split(data, SelfDistillConfig(max_k=3), seed=0)
    assert set(out) == {"ridge", "ridge_trainval", "sd1", "sd2", "sdk", "diagnostic"}
    assert 1 <= out["sdk"]["k"] <= 3
    assert all(np.isfinite(r["test_mse"]) for m, r in out.items() if m != "diagnostic")
    # tuned ridge is far better than predicting the train mean
    assert out["ridge"]["test_mse"] < 0.7 * np.mean(data.y_test**2)
    same_lam = fit_split(data, SelfDistillConfig(max_k=3, sd_lam="ridge"), seed=0)
    assert same_lam["sd2"]["lam"] == same_lam["ridge"]["lam"]


def test_cli_writes_report(tmp_path, capsys):
    from edgekd.cli import main

    out = tmp_path / "sd.json"
    assert main(["selfdistill", "--dataset", "diabetes,boston", "--splits", "2", "--max-k", "2",
                 "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    for name in ("diabetes", "boston"):
        methods = report["results"][name]["methods"]
        assert {"ridge", "sd1", "sd2", "sdk"} <= set(methods)
        assert set(methods["sdk"]["k"]) <= {"1", "2"}
        # the gain's CI is the t-interval of the per-split differences ridge - sd2 (t_{0.975,1} = tan(0.475 pi))
        runs = report["results"][name]["per_split"]
        diffs = [r["ridge"]["test_mse"] - r["sd2"]["test_mse"] for r in runs]
        half = np.tan(0.475 * np.pi) * abs(diffs[0] - diffs[1]) / 2
        np.testing.assert_allclose(methods["sd2"]["gain"]["ci95"], [np.mean(diffs) - half, np.mean(diffs) + half])
    printed = capsys.readouterr().out
    assert "sdk" in printed and "s_max/s_min" in printed
    markdown = out.with_suffix(".md").read_text()
    assert "| diabetes (442, 10) | ridge (lam by CV on train) |" in markdown
    assert "gain over ridge [95% CI]" in markdown and "| boston |" in markdown
    assert main(["selfdistill", "--dataset", "iris"]) == 2


@pytest.mark.slow
def test_network_generations_digits8():
    import torch

    from edgekd.data import load_dataset
    from edgekd.distill import KDConfig
    from edgekd.models import ModelConfig

    torch.set_num_threads(1)
    data = load_dataset("digits8", seed=0)
    cfg = ModelConfig("student_mlp", data.input_shape, data.num_classes, {"hidden": 32})
    rows = network_generations(data, cfg, generations=2, alpha=0.5, config=KDConfig(epochs=2, seed=0), seed=0)
    assert [r["generation"] for r in rows] == [0, 1]
    assert all(r["test_accuracy"] > 0.4 for r in rows)  # chance is 0.1


def test_ridge_cv_coef_matches_sklearn_over_the_same_folds():
    from sklearn.linear_model import Ridge

    X, y, rng = _problem(n=60, d=5, seed=7)
    coefs = np.logspace(-4, 1, 11)
    folds = unit_folds(len(y), 5, rng)
    err = np.zeros(len(coefs))
    for f in folds:
        keep = np.setdiff1d(np.arange(len(y)), f)
        for i, c in enumerate(coefs):
            model = Ridge(alpha=c * len(keep), fit_intercept=False, solver="cholesky").fit(X[keep], y[keep])
            err[i] += np.sum((model.predict(X[f]) - y[f]) ** 2)
    assert ridge_cv_coef(X, y, coefs, folds) == coefs[int(np.argmin(err))]


def test_unit_folds_keep_units_together():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), rng.integers(1, 5, size=30))
    folds = unit_folds(len(groups), 4, rng, groups)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(groups)))
    units = [set(groups[f]) for f in folds]
    assert all(not (units[i] & units[j]) for i in range(4) for j in range(i + 1, 4))


def test_spectral_diagnostic_on_a_design_with_known_singular_values():
    n = 50
    s_known = np.sqrt(n) * np.array([4.0, 2.0, 1.0, 0.5])
    X, _, _, _ = synthetic_design(n, 4, singular_values=s_known, alignment="eigenvector", seed=2)
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    np.testing.assert_allclose(s, s_known, rtol=1e-12)
    lam = 0.5 * n
    # theta* along the second right singular vector; ridge of noiseless targets stays on it
    theta_star = Vt[1]
    d = spectral_diagnostic(s, Vt, ridge(X, X @ theta_star, lam), lam)
    assert d["condition"] == pytest.approx(8.0)
    assert d["min_relative_gap"] == pytest.approx(0.5)  # every neighbour is half the previous
    assert d["top1_fraction"] == pytest.approx(0.0, abs=1e-20) and d["top3_fraction"] == pytest.approx(1.0)
    assert d["max_direction"] == 1 and d["max_direction_fraction"] == pytest.approx(1.0)
    assert d["shrinkage_min"] == pytest.approx(0.25 * n / (0.25 * n + lam))  # s_min^2 = 0.25 n
    # 0.6 along direction 1 and 0.8 along direction 3: 36% top-1, 100% top-3, 64% in the best one
    d = spectral_diagnostic(s, Vt, 0.6 * Vt[0] - 0.8 * Vt[2], lam)
    assert (d["top1_fraction"], d["top3_fraction"], d["max_direction_fraction"]) == pytest.approx((0.36, 1.0, 0.64))
    assert d["max_direction"] == 2


@pytest.mark.parametrize("case,expect_gain", [("distinct+aligned", True), ("distinct+spread", False),
                                              ("equal+aligned", False)])
def test_plugin_oracle_gain_only_where_the_theory_allows_it(case, expect_gain):
    from edgekd.distill.self_distill import SYNTHETIC_CASES

    n, d, sigma = 100, 8, 2.0
    sv, alignment, _ = SYNTHETIC_CASES[case]
    X, theta_star, _, _ = synthetic_design(n, d, singular_values=sv(n, d), alignment=alignment, seed=0)
    # noise orthogonal to the columns of X, scaled so least squares returns theta* and sigma exactly
    U = np.linalg.svd(X, full_matrices=False)[0]
    z = np.random.default_rng(0).standard_normal(n)
    e = z - U @ (U.T @ z)
    e *= sigma * np.sqrt(n - d) / np.linalg.norm(e)
    out = plugin_oracle(X, X @ theta_star + e, [c * n for c in np.logspace(-4, 2, 241)])
    assert out["sigma2"] == pytest.approx(sigma**2)
    if expect_gain:
        assert out["ratio"] < 0.5  # the docs' oracle table: 0.0409 vs 0.1500 at k = 2
    else:
        assert out["ratio"] == pytest.approx(1.0, abs=2e-3)


def test_fit_split_never_looks_at_the_test_targets():
    import dataclasses

    from edgekd.data.tabular import load_tabular

    data = load_tabular("autompg", seed=1)
    noisy = dataclasses.replace(data, y_test=np.random.default_rng(0).normal(0, 100, len(data.y_test)))
    a = fit_split(data, SelfDistillConfig(max_k=3), seed=1)
    b = fit_split(noisy, SelfDistillConfig(max_k=3), seed=1)
    for m in ("ridge", "ridge_trainval", "sd1", "sd2", "sdk"):
        assert {k: v for k, v in a[m].items() if k != "test_mse"} == {k: v for k, v in b[m].items() if k != "test_mse"}
        assert a[m]["test_mse"] != b[m]["test_mse"]
    assert a["diagnostic"] == b["diagnostic"]


def test_plugin_best_mse_gain_by_hand():
    # one direction: s = sqrt(n), ridge excess risk and the oracle's are in closed form at the best lam
    n, sigma, w = 4, 1.0, 0.5
    X = np.zeros((n, 1))
    X[:, 0] = 1.0  # s = 2 = sqrt(n)
    y = X[:, 0] * w + np.array([1.0, -1.0, 1.0, -1.0]) * np.sqrt(3 / 4) * sigma  # RSS / (n - 1) = sigma^2
    lams = np.linspace(1e-3, 10, 20001)
    out = plugin_oracle(X, y, lams)
    # ridge in 1-D: risk(lam) = (r - 1)^2 w^2 + r^2 sigma^2 / n with r = 4/(4+lam), minimised at r = w^2/(w^2+sigma^2/n)
    r = w**2 / (w**2 + sigma**2 / n)
    ridge_best = (r - 1) ** 2 * w**2 + r**2 * sigma**2 / n
    assert out["ridge_excess"] == pytest.approx(ridge_best, rel=1e-6)
    # with one direction any SD filter is a scalar multiple of ridge: no gain
    assert out["best_mse_gain"] == pytest.approx(0.0, abs=1e-7)
    assert out["ridge_over_noise"] == pytest.approx(ridge_best / sigma**2, rel=1e-6)
