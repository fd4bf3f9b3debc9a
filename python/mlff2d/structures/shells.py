"""Distances from a defect and radial shells: the one definition every radial analysis uses.

The harmonic local PDOS (:mod:`mlff2d.phonons`) and the MD VDOS per shell
(:mod:`mlff2d.dynamics`) both bin atoms by these functions, so their shells are the same.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from numpy.typing import NDArray

from mlff2d.errors import InputError


def distances_from(atoms: Atoms, center: NDArray[np.float64]) -> NDArray[np.float64]:
    """Distances (Å) of all atoms from ``center`` (Cartesian Å), minimum image in-plane.

    Periodic in x and y; z is the vacuum direction and is not wrapped.
    """
    from ase.geometry import get_distances

    _, d = get_distances(np.atleast_2d(center), atoms.positions, cell=atoms.cell, pbc=[1, 1, 0])
    return d[0]


def shell_edges(distances: NDArray[np.float64], width: float) -> NDArray[np.float64]:
    """Shell boundaries ``0, w, 2w, ...`` (Å) covering all ``distances``; shell k is ``[k w, (k+1) w)``.

    Raises
    ------
    InputError
        If ``width`` is not positive.
    """
    if width <= 0:
        raise InputError(f"shell width must be positive, got {width}", "e.g. --shell-width 2")
    n = int(np.floor(distances.max() / width)) + 1
    return np.arange(n + 1) * float(width)
