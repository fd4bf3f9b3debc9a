"""Reading and writing structures: extxyz and LAMMPS data (``atom_style atomic``)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import numpy as np
from ase import Atoms
from ase.io import read, write

from mlff2d.errors import StructureError

Format = Literal["extxyz", "lammps-data"]

_METALS = ("W", "Mo")
_CHALCOGENS = ("Se", "S", "Te")


def structure_key(atoms: Atoms, salt: str = "") -> str:
    """Stable key (20 hex digits) of a structure: species, positions, cell and periodicity.

    Positions and cell are rounded to 1e-8 Å so that a re-read extxyz gives the same key.
    ``salt`` (e.g. the hash of calculator settings) is mixed in first. The one structure hash of
    the package: label stores and force caches use it.
    """
    h = hashlib.sha256()
    h.update(salt.encode())
    h.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
    h.update(np.round(atoms.positions, 8).astype(np.float64).tobytes())
    h.update(np.round(atoms.cell.array, 8).astype(np.float64).tobytes())
    h.update(np.asarray(atoms.pbc, dtype=bool).tobytes())
    return h.hexdigest()[:20]


def species_order(atoms: Atoms | list[Atoms]) -> list[str]:
    """Element order for LAMMPS types: metals, then chalcogens, then others (alphabetical).

    For WSe2 this is ``["W", "Se"]``; a Mo-doped WSe2 gives ``["W", "Se", "Mo"]`` so that
    host types keep their numbers.
    """
    frames = atoms if isinstance(atoms, list) else [atoms]
    present: set[str] = set()
    for a in frames:
        present.update(a.get_chemical_symbols())
    # the host is the most common metal and chalcogen
    counts = {s: sum(a.get_chemical_symbols().count(s) for a in frames) for s in present}
    host_m = max((s for s in present if s in _METALS), key=lambda s: counts[s], default=None)
    host_x = max((s for s in present if s in _CHALCOGENS), key=lambda s: counts[s], default=None)
    order = [s for s in (host_m, host_x) if s is not None]
    order += sorted(present - set(order))
    return order


def write_structure(
    atoms: Atoms, path: str | Path, fmt: Format | None = None, specorder: list[str] | None = None
) -> Path:
    """Write ``atoms`` as extxyz or LAMMPS data (``atom_style atomic``, metal units, masses).

    Parameters
    ----------
    fmt
        ``"extxyz"`` or ``"lammps-data"``; default from the suffix (``.data``/``.lmp`` →
        LAMMPS data, anything else extxyz).
    specorder
        Element order of LAMMPS atom types; default :func:`species_order` (``W Se``).
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if fmt is None:
        fmt = "lammps-data" if p.suffix in (".data", ".lmp") else "extxyz"
    if fmt == "extxyz":
        write(p, atoms, format="extxyz")
    elif fmt == "lammps-data":
        order = specorder or species_order(atoms)
        missing = set(atoms.get_chemical_symbols()) - set(order)
        if missing:
            raise StructureError(f"elements {sorted(missing)} are not in the species order {order}")
        write(
            p, atoms, format="lammps-data", specorder=order, masses=True, atom_style="atomic", units="metal"
        )
    else:
        raise StructureError(f"unknown structure format '{fmt}'", "use extxyz or lammps-data")
    return p


def read_structure(path: str | Path, index: int | str = -1) -> Atoms | list[Atoms]:
    """Read a structure file (any format ASE reads; extxyz keeps all ``info``).

    Raises
    ------
    StructureError
        If the file is missing or cannot be parsed.
    """
    p = Path(path)
    if not p.is_file():
        raise StructureError(f"structure file not found: {p}", "check the path")
    try:
        return read(p, index=index)
    except Exception as exc:  # noqa: BLE001 - any parser error becomes one line
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise StructureError(
            f"cannot read structure file {p}: {type(exc).__name__}: {first}",
            "give an extxyz, POSCAR, cif or LAMMPS data file",
        ) from None
