"""The batched squared-hinge solver reaches LinearSVC's (unique) solution."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.svm import LinearSVC

from soundnet_cli.errors import SvmError
from soundnet_cli.svm.solver import fit_squared_hinge


def _problem(n: int, d: int, k: int, scale: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * scale + rng.normal(size=d) * scale  # offset: unscaled data
    y = (X @ rng.normal(size=(d, k)) + rng.normal(size=(n, k)) * scale * 3).argmax(1)
    y[:k] = np.arange(k)  # every class present
    return X, y


def _reference(X: np.ndarray, y: np.ndarray, C: float, scaling: float = 1.0):
    clf = LinearSVC(C=C, loss="squared_hinge", dual=True, tol=1e-10, max_iter=200_000,
                    intercept_scaling=scaling).fit(X, y)
    coef, intercept = clf.coef_, clf.intercept_
    if coef.shape[0] == 1:  # liblinear's single row for two classes
        coef, intercept = np.concatenate([-coef, coef]), np.concatenate([-intercept, intercept])
    return coef, intercept


def _objective(coef, intercept, X, y, C, scaling=1.0):
    Y = np.where(y[:, None] == np.arange(coef.shape[0]), 1.0, -1.0)
    m = np.maximum(0.0, 1.0 - Y * (X @ coef.T + intercept))
    return 0.5 * ((coef ** 2).sum(1) + (intercept / scaling) ** 2) + C * (m ** 2).sum(0)


@pytest.mark.parametrize("n,d,k,C,scale", [
    (300, 20, 3, 0.01, 1.0),     # more instances than dims, the paper protocol's shape
    (600, 50, 5, 1.0, 1.0),      # weak regularisation
    (150, 400, 4, 0.01, 30.0),   # more dims than instances, large unscaled values
    (200, 60, 2, 0.1, 1.0),      # two classes: rows -w, +w as liblinear's one row
])
def test_matches_linearsvc(n, d, k, C, scale):
    X, y = _problem(n, d, k, scale, seed=n + d)
    ref_coef, ref_int = _reference(X, y, C)
    fit = fit_squared_hinge(X, y, k, C, tol=1e-9, max_iter=1000)
    assert fit.converged
    assert fit.coef.shape == (k, d) and fit.intercept.shape == (k,)
    np.testing.assert_allclose(fit.coef, ref_coef, rtol=0, atol=1e-4 * np.abs(ref_coef).max())
    np.testing.assert_allclose(fit.intercept, ref_int, rtol=0,
                               atol=1e-4 * max(np.abs(ref_int).max(), 1e-3))
    np.testing.assert_allclose(_objective(fit.coef, fit.intercept, X, y, C),
                               _objective(ref_coef, ref_int, X, y, C), rtol=1e-6)


def test_default_tolerance_is_as_good_as_liblinears_own():
    """At tol=1e-4 (LinearSVC's default) the objective is as close to the optimum as liblinear's
    primal solver gets with the same tolerance, and predictions agree with the exact solution."""
    X, y = _problem(400, 200, 4, 30.0, seed=1)
    C = 0.01
    fit = fit_squared_hinge(X, y, 4, C)
    assert fit.converged
    primal = LinearSVC(C=C, loss="squared_hinge", dual=False, tol=1e-4).fit(X, y)
    ref_coef, ref_int = _reference(X, y, C)
    ours = _objective(fit.coef, fit.intercept, X, y, C)
    exact = _objective(ref_coef, ref_int, X, y, C)
    theirs = _objective(primal.coef_, primal.intercept_, X, y, C)
    assert np.all(ours - exact <= 2 * (theirs - exact) + 1e-3 * exact)
    assert np.all(ours <= exact * 1.05)
    pred = (X @ fit.coef.T + fit.intercept).argmax(1)
    assert np.mean(pred == (X @ ref_coef.T + ref_int).argmax(1)) >= 0.99


def test_float32_inputs_give_the_float64_answer():
    X, y = _problem(500, 40, 3, 5.0, seed=2)
    a = fit_squared_hinge(X, y, 3, 0.01, tol=1e-6)
    b = fit_squared_hinge(X.astype(np.float32), y, 3, 0.01, tol=1e-6)
    assert a.coef.dtype == b.coef.dtype == np.float64
    np.testing.assert_allclose(b.coef, a.coef, atol=1e-4 * np.abs(a.coef).max())


def test_intercept_scaling_is_liblinears():
    X, y = _problem(300, 10, 3, 1.0, seed=3)
    ref_coef, ref_int = _reference(X, y, 0.1, scaling=10.0)
    fit = fit_squared_hinge(X, y, 3, 0.1, intercept_scaling=10.0, tol=1e-9, max_iter=1000)
    np.testing.assert_allclose(fit.intercept, ref_int, atol=1e-4 * np.abs(ref_int).max())
    np.testing.assert_allclose(fit.coef, ref_coef, atol=1e-4 * np.abs(ref_coef).max())


def test_iteration_limit_is_reported():
    X, y = _problem(300, 100, 4, 30.0, seed=4)
    fit = fit_squared_hinge(X, y, 4, 1.0, tol=1e-12, max_iter=1)
    assert not fit.converged and fit.iterations == 1


def test_bad_arguments():
    X, y = _problem(20, 3, 2, 1.0, seed=5)
    with pytest.raises(SvmError, match="C must be positive"):
        fit_squared_hinge(X, y, 2, 0.0)
    with pytest.raises(SvmError, match="labels"):
        fit_squared_hinge(X, y[:-1], 2, 0.1)
    with pytest.raises(SvmError, match="labels"):
        fit_squared_hinge(X[:, 0], y, 2, 0.1)
