"""2H MX2 monolayers and supercells.

Cell convention (that of spglib/Phonopy for hexagonal lattices): a1 = (a, 0, 0),
a2 = (-a/2, a√3/2, 0), a3 = (0, 0, c) with c = thickness + vacuum. The metal sits at
fractional (0, 0) in the mid-plane, the chalcogens at (1/3, 2/3) above and below it, so
M = (1/2, 0, 0) and K = (1/3, 1/3, 0) in reciprocal fractional coordinates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from mlff2d.errors import StructureError

METALS = ("Mo", "W")
CHALCOGENS = ("S", "Se", "Te")

#: Minimum vacuum (Å) along z for a cell to count as 2D: the one rule of every command and
#: calculator (DFT profiles may ask for more with ``min_vacuum``).
MIN_VACUUM = 15.0


@dataclass(frozen=True)
class Material:
    """A 2H MX2 monolayer.

    Attributes
    ----------
    metal, chalcogen
        Element symbols (M in {Mo, W}, X in {S, Se, Te}).
    a
        In-plane lattice constant (Å).
    thickness
        Vertical X–X distance within the layer (Å).
    """

    metal: str
    chalcogen: str
    a: float
    thickness: float

    @property
    def formula(self) -> str:
        """Chemical formula, e.g. ``"WSe2"``."""
        return f"{self.metal}{self.chalcogen}2"

    @property
    def elements(self) -> tuple[str, str]:
        """Elements in LAMMPS type order (metal first)."""
        return (self.metal, self.chalcogen)


#: Default lattice constants and X–X thicknesses (Å), DFT-PBE monolayer values.
#: WSe2 from shared/reference/wse2.md; the others are typical PBE literature values.
MATERIALS: dict[str, Material] = {
    m.formula: m
    for m in (
        Material("Mo", "S", 3.18, 3.13),
        Material("Mo", "Se", 3.32, 3.34),
        Material("Mo", "Te", 3.55, 3.61),
        Material("W", "S", 3.18, 3.14),
        Material("W", "Se", 3.32, 3.36),
        Material("W", "Te", 3.56, 3.60),
    )
}


def parse_formula(formula: str) -> tuple[str, str]:
    """Split ``"WSe2"`` into ``("W", "Se")``.

    Raises
    ------
    StructureError
        If the formula is not M X2 with M in {Mo, W} and X in {S, Se, Te}.
    """
    m = re.fullmatch(r"([A-Z][a-z]?)([A-Z][a-z]?)2", formula.strip())
    if not m:
        raise StructureError(
            f"cannot read formula '{formula}'", "write it as MX2, e.g. WSe2, MoS2, WS2, MoSe2"
        )
    metal, chalc = m.groups()
    for el in (metal, chalc):
        if el not in atomic_numbers:
            raise StructureError(f"unknown element '{el}' in '{formula}'", "use real element symbols")
    if metal not in METALS:
        raise StructureError(f"unsupported metal '{metal}' in '{formula}'", f"use one of {METALS}")
    if chalc not in CHALCOGENS:
        raise StructureError(f"unsupported chalcogen '{chalc}' in '{formula}'", f"use one of {CHALCOGENS}")
    return metal, chalc


def monolayer(
    formula: str = "WSe2",
    a: float | None = None,
    thickness: float | None = None,
    vacuum: float = 20.0,
) -> Atoms:
    """Primitive cell (3 atoms) of a 2H MX2 monolayer.

    Parameters
    ----------
    formula
        ``"WSe2"``, ``"MoS2"``, ... (M in {Mo, W}, X in {S, Se, Te}).
    a
        In-plane lattice constant (Å); default from :data:`MATERIALS`.
    thickness
        Vertical X–X distance (Å); default from :data:`MATERIALS`.
    vacuum
        Cell length along z minus the thickness (Å); at least :data:`MIN_VACUUM`.

    Returns
    -------
    ase.Atoms
        Order M, X(top), X(bottom); ``info["formula"]``, ``info["config_type"] = "pristine"``.
    """
    metal, chalc = parse_formula(formula)
    mat = MATERIALS[f"{metal}{chalc}2"]
    a = mat.a if a is None else float(a)
    h = mat.thickness if thickness is None else float(thickness)
    if not 2.0 < a < 6.0:
        raise StructureError(f"lattice constant a = {a} Å is unphysical", "give a in Å, e.g. 3.32")
    if not 1.0 < h < 6.0:
        raise StructureError(f"thickness {h} Å is unphysical", "give the X–X distance in Å, e.g. 3.36")
    if vacuum < MIN_VACUUM:
        raise StructureError(
            f"vacuum {vacuum} Å is too small for a 2D cell (rule: ≥ {MIN_VACUUM:g} Å)",
            f"use at least {MIN_VACUUM:g} Å",
        )
    c = h + vacuum
    cell = np.array([[a, 0.0, 0.0], [-a / 2, a * np.sqrt(3) / 2, 0.0], [0.0, 0.0, c]])
    zc = c / 2
    frac_xy = [(0.0, 0.0), (1 / 3, 2 / 3), (1 / 3, 2 / 3)]
    z = [zc, zc + h / 2, zc - h / 2]
    pos = [np.array([fx, fy, 0.0]) @ cell + [0, 0, zz] for (fx, fy), zz in zip(frac_xy, z, strict=True)]
    atoms = Atoms([metal, chalc, chalc], positions=pos, cell=cell, pbc=True)
    atoms.info["formula"] = mat.formula
    atoms.info["config_type"] = "pristine"
    return atoms


def supercell(atoms: Atoms, n: int, m: int | None = None) -> Atoms:
    """In-plane ``n × m`` supercell (``m = n`` by default); keeps ``info``.

    Raises
    ------
    StructureError
        If ``n`` or ``m`` is smaller than 1.
    """
    m = n if m is None else m
    for v in (n, m):
        if int(v) != v or v < 1:
            raise StructureError(f"supercell size {v} is invalid", "use integers ≥ 1, e.g. 12 12")
    sc = atoms.repeat((int(n), int(m), 1))
    sc.info = dict(atoms.info)
    sc.info["supercell"] = [int(n), int(m)]
    return sc


def vacuum_of(atoms: Atoms) -> float:
    """Empty space along z (Å): the largest gap between atoms along the cell height, periodic images included.

    A layer that straddles the cell boundary along z is measured correctly.
    """
    cell = atoms.cell.array
    height = abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[0], cell[1]))
    frac_z = np.linalg.solve(cell.T, atoms.positions.T)[2] % 1.0
    z = np.sort(frac_z) * height
    return float(np.diff(np.concatenate([z, [z[0] + height]])).max())


def check_2d(atoms: Atoms, min_vacuum: float = MIN_VACUUM) -> None:
    """Check that a cell is a 2D slab: periodic in x and y, a1 and a2 in-plane, a3 along z, vacuum along z.

    Parameters
    ----------
    atoms
        The cell.
    min_vacuum
        Smallest accepted vacuum along z (Å); default :data:`MIN_VACUUM`.

    Raises
    ------
    StructureError
        If the cell has no atoms, is not periodic in x and y, has no volume, a1/a2 have z
        components, a3 has in-plane components, or the vacuum is too small.
    """
    cell = atoms.cell.array
    if len(atoms) == 0:
        raise StructureError("the structure has no atoms", "give a file with at least one structure")
    volume = abs(np.linalg.det(cell))
    if not all(atoms.pbc[:2]) or volume < 1e-6:
        raise StructureError(
            f"not a periodic 2D cell (pbc = {atoms.pbc.tolist()}, cell volume {volume:.3g} Å³)",
            'give a cell periodic in x and y (extxyz: Lattice=... pbc="T T T")',
        )
    if np.abs(cell[:2, 2]).max() > 1e-6 or np.abs(cell[2, :2]).max() > 1e-6:
        raise StructureError(
            "cell is not 2D: a1, a2 must lie in the xy plane and a3 along z",
            "rotate the cell so the layer is in xy and the vacuum along z",
        )
    vac = vacuum_of(atoms)
    if vac < min_vacuum - 1e-6:
        raise StructureError(
            f"cell has only {vac:.1f} Å of vacuum along z (rule: ≥ {min_vacuum:g} Å for a 2D cell)",
            f"add vacuum along z (e.g. `mlff2d structure --vacuum 20`), at least {min_vacuum:g} Å",
        )
