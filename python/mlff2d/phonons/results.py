"""Typed phonon results: dataclasses of arrays that round-trip through ``.npz`` + ``.json``.

Frequencies are in THz, DOS in states/THz (normalisation stated per object), distances along
a band path in Phonopy's units (2π/Å is not applied: reciprocal Å).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from mlff2d.resultio import NpzJson

T = TypeVar("T")


@dataclass(repr=False)
class BandStructure(NpzJson):
    """Frequencies along a path.

    Attributes
    ----------
    qpoints
        (n_q, 3) reduced coordinates of the primitive reciprocal lattice.
    distances
        (n_q,) path length (1/Å).
    frequencies
        (n_q, n_bands) THz; imaginary modes are negative.
    tick_distances
        (n_ticks,) path length at the labelled points.
    tick_labels
        Labels at the ticks, e.g. ``["Γ", "M", "K", "Γ"]``.
    """

    qpoints: NDArray[np.float64]
    distances: NDArray[np.float64]
    frequencies: NDArray[np.float64]
    tick_distances: NDArray[np.float64]
    tick_labels: list[str] = field(default_factory=list)


@dataclass(repr=False)
class DOS(NpzJson):
    """Total and partial densities of states on one frequency grid.

    Attributes
    ----------
    frequencies
        (n_f,) THz.
    total
        (n_f,) states/THz per atom (integrates to 3).
    partial
        Name → (n_f,) states/THz per atom of the whole cell (partials sum to ``total``);
        names are elements (``"W"``) or element and direction (``"Se xy"``, ``"Se z"``).
    sigma
        Gaussian smearing (THz); None for the tetrahedron method.
    """

    frequencies: NDArray[np.float64]
    total: NDArray[np.float64]
    partial: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    sigma: float | None = None


@dataclass(repr=False)
class Modes(NpzJson):
    """Modes at one q-point.

    Attributes
    ----------
    frequencies
        (n_modes,) THz.
    labels
        Irreducible representation of each mode ("" where unknown).
    ipr
        (n_modes,) inverse participation ratio (1/N delocalised ... 1 on one atom), or empty.
    defect_weight
        (n_modes,) fraction of each mode's squared amplitude on atoms within the localisation
        radius of the defect, or empty.
    """

    frequencies: NDArray[np.float64]
    labels: list[str] = field(default_factory=list)
    ipr: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    defect_weight: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))


@dataclass(repr=False)
class SpectralMap(NpzJson):
    """Unfolded spectral function A(q, ω) along a path.

    Attributes
    ----------
    distances
        (n_q,) path length (1/Å).
    frequencies
        (n_f,) THz grid.
    weights
        (n_q, n_f) spectral weight (states/THz per primitive cell).
    tick_distances, tick_labels
        As in :class:`BandStructure`.
    """

    distances: NDArray[np.float64]
    frequencies: NDArray[np.float64]
    weights: NDArray[np.float64]
    tick_distances: NDArray[np.float64]
    tick_labels: list[str] = field(default_factory=list)


@dataclass(repr=False)
class ShellPDOS(NpzJson):
    """Local PDOS in shells of distance from the defect centre.

    Attributes
    ----------
    frequencies
        (n_f,) THz.
    edges
        (n_shells + 1,) shell boundaries (Å).
    pdos
        (n_shells, n_f) states/THz summed over the atoms of each shell (shells sum to the
        total DOS of the supercell).
    counts
        (n_shells,) atoms in each shell.
    """

    frequencies: NDArray[np.float64]
    edges: NDArray[np.float64]
    pdos: NDArray[np.float64]
    counts: NDArray[np.int64]
