"""Force engines: "forces for this list of displaced supercells", with a cache.

One interface, :meth:`ForceEngine.compute` (:mod:`.base`), and a registry of back ends
(:data:`ENGINES`):

``ase``, ``lammps`` (:mod:`.calculator`)
    Any ASE calculator, one structure at a time (the SW teacher through LAMMPS, a
    ``MACECalculator``, a DFT calculator).
``mace-batched`` (:mod:`.batched`)
    A MACE model evaluated on many displaced supercells per forward pass on one neighbour
    graph, the batch size chosen from the free memory (:mod:`.sizing`), one-atom displacements
    of large supercells on the exact local route (:mod:`.local_route`).
``mace-hessian`` (:mod:`.hessian`)
    Force constants from the analytic MACE Hessian, without displacements.
``symmetrix`` (:mod:`.symmetrix`)
    A MACE model through Symmetrix-XL's specialised kernels (:mod:`mlff2d.training.symmetrix`),
    one structure at a time: ``auto`` takes it when the model's kernels are prepared.

:func:`compute_force_sets` (:mod:`.cache`) runs an engine over displaced supercells and caches
one ``.npy`` file per displacement, so an interrupted run resumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlff2d.errors import ModelError
from mlff2d.phonons.engines.base import ENGINES, ForceEngine, make_engine, register
from mlff2d.phonons.engines.batched import MACEBatchEngine, load_mace_calculator
from mlff2d.phonons.engines.cache import ForceCache, compute_force_sets
from mlff2d.phonons.engines.calculator import ASEEngine, LammpsEngine
from mlff2d.phonons.engines.hessian import (
    MACEHessianEngine,
    mace_hessian_force_constants,
    mace_hessian_rows,
)
from mlff2d.phonons.engines.sizing import available_memory_bytes
from mlff2d.phonons.engines.symmetrix import SymmetrixEngine


def calculator_and_engine(
    calculator: str, model: Path | None, engine: str, device: str, batch_size: int | None
) -> tuple[Any, ForceEngine]:
    """The ASE calculator (for relaxation) and the force engine (for displacements).

    Parameters
    ----------
    calculator
        ``"sw"`` (the SW teacher through LAMMPS) or ``"mace"`` (``model``).
    model
        The MACE ``*.model`` file (``"mace"`` only).
    engine
        ``"auto"`` (for MACE: ``symmetrix`` when the model's Symmetrix-XL kernels are prepared,
        else ``mace-batched``; ``ase`` for SW) or an engine name; SW takes ``ase``/``lammps``,
        MACE every engine but ``lammps`` (checked by the caller). The MACE route taken and why
        is logged (:func:`mlff2d.training.symmetrix.choose_route`).
    device
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    batch_size
        MACE structures per forward pass (None: chosen from the free memory).
    """
    if calculator == "sw":
        from mlff2d.reference.sw import SWTeacher

        calc = SWTeacher()
        return calc, ASEEngine(calc)
    if model is None:
        raise ModelError("the MACE calculator needs a model file", "pass --model path/to/model.model")
    if engine in ("auto", "symmetrix"):
        from mlff2d.training.symmetrix import choose_route, symmetrix_calculator

        route = "symmetrix" if engine == "symmetrix" else "auto"
        if choose_route(model, "float64", route, device).route == "symmetrix":
            calc = symmetrix_calculator(model, "float64")
            return calc, SymmetrixEngine(calculator=calc)
    calc = load_mace_calculator(model, device)
    if engine in ("auto", "mace-batched", "mace-hessian"):
        name = "mace-batched" if engine == "auto" else engine
        return calc, make_engine(name, model=calc, batch_size=batch_size)
    return calc, ASEEngine(calc)


__all__ = [
    "ENGINES",
    "ASEEngine",
    "ForceCache",
    "ForceEngine",
    "LammpsEngine",
    "MACEBatchEngine",
    "MACEHessianEngine",
    "SymmetrixEngine",
    "available_memory_bytes",
    "calculator_and_engine",
    "compute_force_sets",
    "load_mace_calculator",
    "mace_hessian_force_constants",
    "mace_hessian_rows",
    "make_engine",
    "register",
]
