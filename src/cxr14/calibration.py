"""Temperature scaling of per-class probabilities (Guo et al. 2017), fitted on validation only.

Each class's logit is divided by its own temperature T > 0 chosen to minimise the validation
log-loss. Dividing a logit by a positive number keeps the order of the scores, so AUROC, AP
and the ranking are unchanged; only the probabilities (Brier score, calibration error,
thresholds' meaning) move. T > 1 softens over-confident probabilities.
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
