"""Least-squares lines through measured points: the one number a lesson reads from a trend.

The lessons measure how a quantity grows or decays and sum the trend up in one number:

    fit_power_law(x, y)    y ≈ c · x^k          a straight line on log-log axes, slope k
                           (Var(q · k) against d_k in lesson 03, time against n in lesson 07)
    fit_exponential(x, y)  y ≈ c · e^(rate · x) a straight line on a log y axis, slope rate
                           (a gradient's norm against distance in lesson 06)

This is the only place these fits are computed: the experiments (`parallel`, `longrange`) and
the figures (`viz`) all call these two functions, so a figure's dashed line and the number a
lesson asserts are the same computation. Numbers only; numpy only (the math layer).
"""

from __future__ import annotations

import numpy as np

from course_lib.shapes import as_float_array

__all__ = ["fit_power_law", "fit_exponential"]


def _points(x: object, y: object, *, positive_x: bool) -> tuple[np.ndarray, np.ndarray]:
    """x and y as float64 vectors of one length >= 2, finite, y > 0 (and x > 0 if asked)."""
    x = as_float_array(x, "x", min_ndim=1).astype(np.float64).ravel()
    y = as_float_array(y, "y", min_ndim=1).astype(np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have one value per point; got {x.size} x and {y.size} y.")
    if x.size < 2 or np.unique(x).size < 2:
        raise ValueError(f"a line needs at least two different x; got x = {x.tolist()}.")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite (leave out the points that were not measured).")
    if np.any(y <= 0) or (positive_x and np.any(x <= 0)):
        which = "x and y" if positive_x else "y"
        raise ValueError(f"{which} must be positive: their logarithm is what is fitted.")
    return x, y


def fit_power_law(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The least-squares fit of y ≈ c · x^k on log-log axes: returns (k, c).

    log y = k · log x + log c, so k is the slope of the log-log line: the exponent of the
    growth (k = 1 for y proportional to x, k = 2 for a cost that quadruples when n doubles).
    x and y: shape (m,), m >= 2 points, positive and finite; any float dtype (computed in
    float64). Raises ValueError otherwise.
    """
    x, y = _points(x, y, positive_x=True)
    k, log_c = np.polyfit(np.log(x), np.log(y), 1)
    return float(k), float(np.exp(log_c))


def fit_exponential(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The least-squares fit of y ≈ c · e^(rate · x) on a log y axis: returns (rate, c).

    ln y = rate · x + ln c: y is multiplied by e^rate per unit of x, so a rate of −0.69
    halves it at every step and a rate of 0 is a flat line (no decay). x and y: shape (m,),
    m >= 2 points, finite, y positive; computed in float64. Raises ValueError otherwise.
    """
    x, y = _points(x, y, positive_x=False)
    rate, log_c = np.polyfit(x, np.log(y), 1)
    return float(rate), float(np.exp(log_c))
