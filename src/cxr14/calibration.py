"""Recalibration of per-class probabilities, fitted on validation only, and the calibration
slope and intercept that measure it.

Every method is a logistic recalibration of each class's logit z: p' = sigmoid(a z + b).

- ``platt`` (Platt 1999; the default): slope a and intercept b by maximum likelihood on the
  validation split. The intercept removes a shift of the base rate, which the weighted loss
  (W-CEL) and oversampling put into every class's logit;
- ``temperature`` (Guo et al. 2017): a = 1/T, b = 0 with T minimising the validation
  log-loss. It cannot move the base rate: after W-CEL it leaves probabilities too high.

``isotonic`` (Zadrozny and Elkan 2002) is the non-parametric option: per class the monotone
step function of the validation labels on the probabilities (pool-adjacent-violators), applied
by linear interpolation between its knots. It can tie scores that differed, so AUROC may move
slightly; with few validation positives it overfits.

With a > 0 the order of the scores is kept, so AUROC, AP and the ranking are unchanged; only
the probabilities (Brier score, calibration error, the meaning of thresholds) move. The
*calibration slope and intercept* of a set of predictions (Cox 1958) are the logistic fit of the
labels on their logits: 1 and 0 when calibrated.
"""

from __future__ import annotations

import numpy as np

# Probabilities are clipped before taking their logit: sigmoid outputs of 0 or 1 in float32.
_EPS = 1e-7


def _logits(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # 1 / (1 + exp(-z)) without overflow for large |z| (NumPy: a figure job needs no SciPy).
    return np.exp(-np.logaddexp(0, -z))


def _log_loss(y: np.ndarray, z: np.ndarray) -> float:
    # -[y log s(z) + (1 - y) log(1 - s(z))], written stably with logaddexp.
    return float(np.mean(np.logaddexp(0, z) - y * z))


def separated_at_half(y: np.ndarray, z: np.ndarray) -> bool:
    """Whether every positive has p >= 0.5 and every negative p <= 0.5 (logits z >= 0 and
    <= 0). Then sharpening never moves a prediction the wrong way: the log-loss keeps falling
    as T -> 0 and validation does not determine a temperature. (Separated by rank only, with
    a positive below 0.5, the minimum is finite: that one is fitted.)"""
    return bool(z[y == 1].min() >= 0 >= z[y == 0].max())


def fit_temperatures(y_val: np.ndarray, p_val: np.ndarray) -> np.ndarray:
    """Per class, the temperature minimising the validation log-loss (searched over
    T in [0.05, 20]) over its known labels; 1 (no change) where validation has no positives or
    no negatives, or separates the class at p = 0.5 (``separated_at_half``)."""
    from scipy.optimize import minimize_scalar

    temps = np.ones(y_val.shape[1])
    for k in range(y_val.shape[1]):
        known = ~np.isnan(np.asarray(y_val[:, k], dtype=np.float64))
        y, z = y_val[known, k], _logits(p_val[known, k])
        if 0 < y.sum() < len(y) and not separated_at_half(y, z):
            best = minimize_scalar(
                lambda log_t, y=y, z=z: _log_loss(y, z / np.exp(log_t)),
                bounds=(np.log(0.05), np.log(20.0)),
                method="bounded",
            )
            temps[k] = float(np.exp(best.x))
    return temps


def apply_temperatures(p: np.ndarray, temps: np.ndarray) -> np.ndarray:
    """Probabilities with each class's logit divided by its temperature."""
    return _sigmoid(_logits(p) / np.asarray(temps)[None, :])


# Recalibration methods, the config's ``eval.calibration``.
METHODS = ("platt", "temperature", "isotonic")
_NEWTON_STEPS = 50


def logistic_fit(y: np.ndarray, z: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood slope and intercept of P(y = 1) = sigmoid(a z + b) (Newton's
    method on the 2-parameter log-likelihood, a small ridge for separated data); (NaN, NaN)
    without both label values."""
    y, z = np.asarray(y, dtype=np.float64), np.asarray(z, dtype=np.float64)
    if not 0 < y.sum() < len(y):
        return float("nan"), float("nan")
    x = np.column_stack([z, np.ones_like(z)])
    w = np.zeros(2)
    for _ in range(_NEWTON_STEPS):
        q = _sigmoid(x @ w)
        grad = x.T @ (y - q) - 1e-6 * w
        hess = (x * (q * (1 - q))[:, None]).T @ x + 1e-6 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w += step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])


def fit_recalibration(y_val: np.ndarray, p_val: np.ndarray, method: str = "platt"):
    """Per class, slope and intercept of the logistic recalibration (``METHODS``) fitted on
    the validation labels (NaN: unknown, left out); (1, 0) where validation has no positives
    or no negatives (no change). Returns (slopes, intercepts)."""
    if method not in METHODS[:2]:
        raise ValueError(f"unknown logistic recalibration {method!r} (platt or temperature)")
    k = y_val.shape[1]
    if method == "temperature":
        return 1 / fit_temperatures(y_val, p_val), np.zeros(k)
    slopes, intercepts = np.ones(k), np.zeros(k)
    for c in range(k):
        known = ~np.isnan(np.asarray(y_val[:, c], dtype=np.float64))
        a, b = logistic_fit(y_val[known, c], _logits(p_val[known, c]))
        if np.isfinite(a) and a > 0:  # a <= 0 would reverse the ranking: leave such a class
            slopes[c], intercepts[c] = a, b
    return slopes, intercepts


def apply_recalibration(p: np.ndarray, slopes, intercepts) -> np.ndarray:
    """Probabilities with each class's logit z replaced by ``slope * z + intercept``."""
    a, b = np.asarray(slopes)[None, :], np.asarray(intercepts)[None, :]
    return _sigmoid(a * _logits(p) + b)


def calibration_slope_intercept(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the calibration slope and intercept of predictions ``p`` (the logistic fit
    of the known labels on logit(p)); NaN where a column has one label value."""
    fits = []
    for c in range(y.shape[1]):
        known = ~np.isnan(np.asarray(y[:, c], dtype=np.float64))
        fits.append(logistic_fit(y[known, c], _logits(p[known, c])))
    return np.array([f[0] for f in fits]), np.array([f[1] for f in fits])


def isotonic_knots(y: np.ndarray, p: np.ndarray) -> tuple[list[float], list[float]]:
    """The isotonic (non-decreasing) least-squares fit of labels ``y`` on scores ``p`` by
    pool-adjacent-violators, tied scores pooled first, as knots: each pooled block's lowest
    and highest score with its fitted value, so that linear interpolation between the knots
    is scikit-learn's ``IsotonicRegression`` prediction (tested). ([0, 1], [0, 1]) (no change)
    without both label values."""
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    if not 0 < y.sum() < len(y):
        return [0.0, 1.0], [0.0, 1.0]
    xs, inverse = np.unique(p, return_inverse=True)
    sums, counts = np.bincount(inverse, weights=y), np.bincount(inverse).astype(np.float64)
    blocks: list[list[float]] = []  # [sum of y, count, lowest score, highest score]
    for x, total, n in zip(xs, sums, counts, strict=True):
        blocks.append([total, n, x, x])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            last = blocks.pop()
            blocks[-1] = [blocks[-1][0] + last[0], blocks[-1][1] + last[1], blocks[-1][2], last[3]]
    knots_x, knots_y = [], []
    for total, n, low, high in blocks:
        knots_x += [low] if low == high else [low, high]
        knots_y += [total / n] * (1 if low == high else 2)
    # Plain floats: a bundle loads with weights_only=True, which refuses NumPy scalars.
    return [float(x) for x in knots_x], [float(v) for v in knots_y]


def fit_calibration(y_val: np.ndarray, p_val: np.ndarray, method: str = "platt") -> dict:
    """The recalibration fitted on validation, as a bundle holds it: ``method`` and per class
    ``slopes`` and ``intercepts`` (platt, temperature) or ``knots`` ([scores, values];
    isotonic). Unknown labels (NaN) are left out."""
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r} (one of {', '.join(METHODS)})")
    if method != "isotonic":
        slopes, intercepts = fit_recalibration(y_val, p_val, method)
        return {"method": method, "slopes": slopes.tolist(), "intercepts": intercepts.tolist()}
    knots = []
    for c in range(y_val.shape[1]):
        known = ~np.isnan(np.asarray(y_val[:, c], dtype=np.float64))
        knots.append(list(isotonic_knots(y_val[known, c], p_val[known, c])))
    return {"method": method, "knots": knots}


def calibrate(p: np.ndarray, calibration: dict | None) -> np.ndarray | None:
    """Calibrated probabilities under a ``fit_calibration`` dict (a bundle's): its slopes and
    intercepts, its isotonic knots, or the temperatures of a format-2 bundle; None for a
    format-1 bundle (no calibration)."""
    if not calibration:
        return None
    if "slopes" in calibration:
        return apply_recalibration(p, calibration["slopes"], calibration["intercepts"])
    if "knots" in calibration:
        columns = [np.interp(p[:, c], *calibration["knots"][c]) for c in range(p.shape[1])]
        return np.column_stack(columns)
    return apply_temperatures(p, calibration["temperatures"])


def subset_calibration(calibration: dict | None, columns: list[int]) -> dict | None:
    """A recalibration (``fit_calibration``'s dict) of the classes at ``columns`` only: those
    a model shares with a data set it is scored on."""
    if not calibration:
        return None
    keys = [k for k in ("slopes", "intercepts", "knots", "temperatures") if k in calibration]
    return {**calibration, **{k: [calibration[k][c] for c in columns] for k in keys}}


def method_name(method: str) -> str:
    """How tables and model cards name a recalibration method."""
    return {
        "platt": "Platt scaling per class (slope and intercept; Platt 1999)",
        "temperature": "temperature scaling per class (Guo et al. 2017)",
        "isotonic": "isotonic regression per class (Zadrozny and Elkan 2002)",
    }[method]
