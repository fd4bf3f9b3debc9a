"""Input checks shared by every command, run before anything is computed or written.

Each stage calls these from its :meth:`~mlff2d.workflow.Workflow.check` (``mlff2d label`` and
``mlff2d structure``, which are not workflows, call them directly), so that one kind of bad input
gets one answer everywhere: an :class:`~mlff2d.errors.InputError` (exit code 2) whose message names
the value and the rule it breaks, and whose hint names the fix.

- **Structures** (:func:`check_structure`): finite positions and cell; no two atoms closer than
  :data:`MIN_DISTANCE`; a 2D cell (:func:`mlff2d.structures.build.check_2d`: periodic in x and y,
  at least :data:`~mlff2d.structures.build.MIN_VACUUM` of vacuum along z); only elements that the
  model or the calculator knows.
- **Files** (:func:`check_file`): exists, is a file, is readable, is of the right kind
  (:data:`KINDS`: a TorchScript ``*.model-lammps.pt`` for LAMMPS, not a mace-torch ``*.model``, and
  the reverse). Models are then loaded (:func:`mace_model_elements`), datasets read
  (:func:`mlff2d.training.data.read_dataset`) and structures parsed
  (:func:`mlff2d.structures.io.read_structure`) before anything is written.
- **Numbers** are checked by the bounds of each stage's settings (:func:`mlff2d.settings.setting`).

This module imports numpy and ASE only inside its functions.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlff2d.errors import InputError, ModelError, StructureError

if TYPE_CHECKING:
    from ase import Atoms

#: Smallest accepted distance between two atoms (Å), periodic images included. Bonds in the
#: transition-metal dichalcogenides are 2.4–2.6 Å; atoms closer than this are a broken structure.
MIN_DISTANCE = 0.8

_METALS = ("Mo", "W")
_CHALCOGENS = ("S", "Se", "Te")


# -- structures -----------------------------------------------------------------------------------


def check_structure(
    atoms: Atoms,
    where: str,
    *,
    known: Iterable[str] | None = None,
    known_by: str = "the model",
    min_vacuum: float | None = None,
    min_distance: float = MIN_DISTANCE,
) -> None:
    """Check one structure: finite, a 2D cell with vacuum, no atoms on top of each other, known elements.

    Parameters
    ----------
    atoms
        The structure.
    where
        What it is, for the messages (a file name and frame, ``"the MD cell"``...).
    known
        Elements the model or calculator knows (``None``: any).
    known_by
        Who knows them, for the message (``"model m.model"``, ``"the SW teacher"``).
    min_vacuum
        Smallest vacuum along z (Å); default :data:`mlff2d.structures.build.MIN_VACUUM`.
    min_distance
        Smallest distance between two atoms (Å).

    Raises
    ------
    StructureError
        If a rule is broken (the message names ``where``, the value and the rule).
    ModelError
        If the structure has an element that ``known`` lacks.
    """
    from mlff2d.structures.build import MIN_VACUUM, check_2d

    check_finite(atoms, where)
    try:
        check_2d(atoms, MIN_VACUUM if min_vacuum is None else min_vacuum)
    except StructureError as exc:
        raise StructureError(f"{where}: {exc.message}", exc.hint) from None
    check_distances(atoms, where, min_distance)
    if known is not None:
        check_elements(atoms.get_chemical_symbols(), known, known_by, where)


def check_finite(atoms: Atoms, where: str) -> None:
    """Refuse NaN or infinite positions or cell vectors, naming the first bad atom.

    Raises
    ------
    StructureError
        If a position or a cell vector is not finite.
    """
    import numpy as np

    cell = atoms.cell.array
    if not np.isfinite(cell).all():
        raise StructureError(
            f"{where}: the cell {cell.tolist()} is not finite", "give a cell of finite vectors (Å)"
        )
    bad = np.flatnonzero(~np.isfinite(atoms.positions).all(axis=1))
    if bad.size:
        i = int(bad[0])
        at = atoms.positions[i].round(3).tolist()
        raise StructureError(
            f"{where}: atom {i} ({atoms.get_chemical_symbols()[i]}) is at {at}: "
            f"positions must be finite ({bad.size} atom(s) are not)",
            "rebuild the structure; check the program that wrote it",
        )


def check_distances(atoms: Atoms, where: str, min_distance: float = MIN_DISTANCE) -> None:
    """Refuse two atoms (or an atom and a periodic image) closer than ``min_distance`` (Å).

    Raises
    ------
    StructureError
        Naming the two atom indices, their elements and their distance.
    """
    import numpy as np
    from ase.neighborlist import neighbor_list

    i, j, d = neighbor_list("ijd", atoms, min_distance)
    if len(d) == 0:
        return
    k = int(np.argmin(d))
    a, b = int(i[k]), int(j[k])
    syms = atoms.get_chemical_symbols()
    pair = f"atoms {a} ({syms[a]}) and {b} ({syms[b]})"
    if a == b:
        pair = f"atom {a} ({syms[a]}) and its periodic image"
    raise StructureError(
        f"{where}: {pair} are {d[k]:.3f} Å apart (rule: no two atoms closer than {min_distance:g} Å)",
        "remove the duplicate atom or fix the positions (two atoms on one site?)",
    )


def element_list(symbols: Iterable[str]) -> str:
    """Distinct elements, metals first, then chalcogens, then the rest: ``"W, Se"``."""
    present = set(symbols)
    order = [s for s in (*_METALS, *_CHALCOGENS) if s in present]
    return ", ".join(order + sorted(present - set(order)))


def check_elements(
    present: Iterable[str],
    known: Iterable[str],
    known_by: str,
    where: str,
    error: type[InputError] = ModelError,
) -> None:
    """Refuse elements of a structure or dataset that the model or calculator does not know.

    Raises
    ------
    InputError
        ``error`` (default :class:`~mlff2d.errors.ModelError`): "MoS2 has element(s) Mo, S
        unknown to model m.model, which knows only W, Se".
    """
    present, known = set(present), set(known)
    missing = present - known
    if missing:
        raise error(
            f"{where} has element(s) {element_list(missing)} unknown to {known_by}, "
            f"which knows only {element_list(known)}",
            f"use a model or calculator that knows {element_list(present)}, or a structure of "
            f"{element_list(known)} only",
        )


# -- files ----------------------------------------------------------------------------------------


def check_file(path: str | Path | None, option: str, kind: str | None = None) -> Path:
    """Check an input file: given, exists, a file, readable and (``kind``) of the right kind.

    Parameters
    ----------
    path
        The file.
    option
        The option or argument that named it (``"--model"``, ``"DATA"``), for the messages.
    kind
        A key of :data:`KINDS` (``"torchscript"``, ``"mace-model"``), or ``None``.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InputError
        Naming the option, the file and what is wrong with it.
    """
    fix = KINDS[kind][1] if kind else "check the path"
    if path is None:
        raise InputError(f"{option} is required", fix)
    p = Path(path)
    if not p.exists():
        raise InputError(f"{option}: {p} not found", fix)
    if p.is_dir():
        raise InputError(f"{option}: {p} is a folder, not a file", fix)
    if not os.access(p, os.R_OK):
        raise InputError(f"{option}: {p} is not readable (permissions)", f"chmod u+r {p}")
    if kind:
        KINDS[kind][0](p, option)
    return p


def _zip_names(path: Path) -> list[str] | None:
    """Names in a zip archive (torch and TorchScript files are zips), ``None`` if not one."""
    try:
        with zipfile.ZipFile(path) as z:
            return z.namelist()
    except (zipfile.BadZipFile, OSError):
        return None


def _is_torchscript(names: list[str] | None) -> bool:
    names = names or []
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def _torchscript(path: Path, option: str) -> None:
    names = _zip_names(path)
    if _is_torchscript(names):
        return
    looks_mace = names is not None and any(n.endswith("/data.pkl") for n in names)
    raise ModelError(
        f"{option}: {path} is not a TorchScript model (LAMMPS needs a *.model-lammps.pt export)",
        f"export it with `mlff2d export {path}`"
        if looks_mace
        else "give the *.model-lammps.pt written by `mlff2d export`",
    )


def _mace_model(path: Path, option: str) -> None:
    """Refuse a LAMMPS export where a mace-torch model is needed (the rest is checked by loading it)."""
    if _is_torchscript(_zip_names(path)):
        raise ModelError(
            f"{option}: {path} is a TorchScript export for LAMMPS, not a mace-torch model",
            "give the *.model written by `mlff2d train` (the export is for `mlff2d md`)",
        )


#: kind -> (check(path, option), hint naming the expected file).
KINDS: dict[str, tuple[Callable[[Path, str], None], str]] = {
    "torchscript": (_torchscript, "give the *.model-lammps.pt written by `mlff2d export`"),
    "mace-model": (_mace_model, "give the *.model written by `mlff2d train`"),
}


# -- models ---------------------------------------------------------------------------------------


def export_card(path: str | Path) -> dict[str, Any]:
    """The card of an exported model: embedded ``mlff2d.json``, else the JSON sidecar; ``{}`` if none.

    Read from the zip archive without torch. The sidecar is ``x.model-lammps.json`` (``mlff2d
    export``) or ``x.model-lammps.pt.json``.
    """
    p = Path(path)
    names = _zip_names(p) or []
    for name in names:
        if name.endswith("/extra/mlff2d.json"):
            with zipfile.ZipFile(p) as z:
                return _json_dict(z.read(name).decode())
    for side in (p.with_suffix(".json"), Path(f"{p}.json")):
        if side.is_file():
            card = _json_dict(side.read_text())
            if card:
                return card
    return {}


def _json_dict(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def mace_model_elements(path: str | Path, option: str = "--model") -> list[str]:
    """Elements of a mace-torch ``*.model`` file, loading it (which checks that it is a MACE model).

    Raises
    ------
    ModelError
        If the file is missing, a LAMMPS export, or not a MACE model.
    """
    from mlff2d.training.data import load_model, model_elements

    p = Path(path)
    if p.is_file():
        _mace_model(p, option)
    return model_elements(load_model(p))


def check_model_and_data(model: Path, data: Path, energy_key: str, forces_key: str) -> None:
    """A mace-torch model and the labelled extxyz it is evaluated on, with elements it knows.

    A folder as ``model`` (a committee) is left to its workflow; the data are checked anyway.

    Raises
    ------
    InputError
        If the data cannot be read or lack labels, the model is not a MACE model, or the data
        hold elements the model does not know.
    """
    from mlff2d.training.data import check_elements, load_model, read_dataset

    frames = read_dataset(data, energy_key, forces_key)
    if Path(model).is_dir():
        return
    if Path(model).is_file():
        _mace_model(Path(model), "MODEL")
    check_elements(frames, load_model(model), data, model)
