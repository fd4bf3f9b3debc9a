"""Strain and rattling of 2D cells."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms

from mlff2d.errors import StructureError

MAX_STRAIN = 0.5


def strain(atoms: Atoms, eps: float | Sequence[float]) -> Atoms:
    """Apply in-plane strain, scaling positions with the cell.

    Parameters
    ----------
    atoms
        A 2D cell (vacuum along z; z is never strained).
    eps
        Biaxial strain (a float, e.g. ``0.02`` for +2 %), or ``(exx, eyy)`` for uniaxial or
        anisotropic strain, or ``(exx, eyy, exy)``. Dimensionless, ``|eps| < 0.5``.

    Returns
    -------
    ase.Atoms
        A strained copy with ``info["strain"] = [exx, eyy, exy]``.
    """
    e = np.atleast_1d(np.asarray(eps, dtype=float))
    if e.size == 1:
        exx = eyy = float(e[0])
        exy = 0.0
    elif e.size in (2, 3):
        exx, eyy = float(e[0]), float(e[1])
        exy = float(e[2]) if e.size == 3 else 0.0
    else:
        raise StructureError(
            f"strain {eps!r} has {e.size} components", "give eps, (exx, eyy) or (exx, eyy, exy)"
        )
    for v in (exx, eyy, exy):
        if not np.isfinite(v) or abs(v) >= MAX_STRAIN:
            raise StructureError(
                f"strain {v:+.3g} is out of range", "give strain as a fraction with |eps| < 0.5 (0.02 = 2 %)"
            )
    F = np.eye(3)
    F[0, 0] += exx
    F[1, 1] += eyy
    F[0, 1] += exy
    F[1, 0] += exy
    out = atoms.copy()
    out.set_cell(atoms.cell.array @ F.T, scale_atoms=True)
    out.info = dict(atoms.info)
    out.info["strain"] = [exx, eyy, exy]
    return out


def rattle(atoms: Atoms, stdev: float, seed: int = 0) -> Atoms:
    """Displace every atom by Gaussian noise of ``stdev`` Å per Cartesian component.

    Parameters
    ----------
    stdev
        Standard deviation (Å), between 0 and 0.5.
    seed
        Seed of the NumPy random generator.
    """
    if not 0.0 <= stdev <= 0.5:
        raise StructureError(f"rattle amplitude {stdev} Å is out of range", "use 0 ≤ stdev ≤ 0.5 Å")
    out = atoms.copy()
    rng = np.random.default_rng(seed)
    out.positions += rng.normal(0.0, stdev, size=out.positions.shape)
    out.info = dict(atoms.info)
    out.info["rattle"] = float(stdev)
    return out
