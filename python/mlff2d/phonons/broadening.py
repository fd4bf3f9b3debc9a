"""Gaussian broadening of mode frequencies into a density of states: the one definition."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def broadened_dos(
    grid: NDArray[np.float64],
    mode_freqs: NDArray[np.float64],
    sigma: float,
    weights: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """Gaussian-broadened DOS (states/THz) of mode frequencies (THz) on ``grid`` (THz).

    Parameters
    ----------
    grid
        Frequencies (THz), shape ``(n_grid,)``.
    mode_freqs
        Mode frequencies (THz), any shape (flattened).
    sigma
        Gaussian standard deviation (THz).
    weights
        Weight of each mode (same shape as ``mode_freqs``), default 1 per mode.

    Returns
    -------
    NDArray
        Shape ``(n_grid,)``; integrates to the sum of the weights.
    """
    f = np.asarray(mode_freqs, dtype=float).ravel()
    wts = np.ones_like(f) if weights is None else np.asarray(weights, dtype=float).ravel()
    grid = np.asarray(grid, dtype=float)
    out = np.zeros_like(grid)
    norm = 1.0 / (sigma * np.sqrt(2 * np.pi))
    for chunk in range(0, f.size, 2048):
        d = (grid[:, None] - f[None, chunk : chunk + 2048]) / sigma
        out += (np.exp(-0.5 * d**2) * wts[None, chunk : chunk + 2048]).sum(axis=1) * norm
    return out
