"""Localisation of phonon modes around a defect: IPR, defect weight, radial local PDOS."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from mlff2d.phonons.results import ShellPDOS


def atom_weights(eigenvectors: NDArray[np.complex128]) -> NDArray[np.float64]:
    """Squared amplitude of each mode on each atom.

    Parameters
    ----------
    eigenvectors
        (3 n_atoms, n_modes) normalised eigenvectors of the dynamical matrix (columns).

    Returns
    -------
    (n_modes, n_atoms) weights; each row sums to 1.
    """
    e = np.abs(eigenvectors) ** 2
    return e.reshape(-1, 3, e.shape[1]).sum(axis=1).T


def ipr(weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """Inverse participation ratio Σ_i p_i² per mode from (n_modes, n_atoms) weights.

    1/N for a mode spread evenly over N atoms, 1 for a mode on one atom.
    """
    return (weights**2).sum(axis=1)


def defect_weight(
    weights: NDArray[np.float64], distances: NDArray[np.float64], radius: float
) -> NDArray[np.float64]:
    """Fraction of each mode's weight on atoms within ``radius`` (Å) of the defect."""
    return weights[:, distances <= radius].sum(axis=1)


def shell_pdos(
    pdos: NDArray[np.float64],
    distances: NDArray[np.float64],
    edges: NDArray[np.float64],
    frequencies: NDArray[np.float64],
) -> ShellPDOS:
    """Sum per-atom PDOS into distance shells.

    Parameters
    ----------
    pdos
        (n_atoms, n_f) PDOS of each atom (states/THz), summed over directions.
    distances
        (n_atoms,) distance of each atom from the defect centre (Å).
    edges
        (n_shells + 1,) shell boundaries (Å); the last shell is closed on the right.
    frequencies
        (n_f,) THz.
    """
    idx = np.clip(np.searchsorted(edges, distances, side="right") - 1, 0, len(edges) - 2)
    n = len(edges) - 1
    out = np.zeros((n, pdos.shape[1]))
    np.add.at(out, idx, pdos)
    counts = np.bincount(idx, minlength=n).astype(np.int64)
    return ShellPDOS(frequencies=frequencies, edges=edges, pdos=out, counts=counts)
