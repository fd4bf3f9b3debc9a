"""ASE calculator for our MACE models (mace-torch's ``MACECalculator``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from mlff2d.errors import InputError
from mlff2d.training.data import import_mace, load_model, resolve_head


def calculator(
    model: str | Path | Sequence[str | Path],
    device: str = "cpu",
    dtype: Literal["float64", "float32"] = "float64",
    head: str | None = None,
):
    """Return a mace-torch ``MACECalculator`` for a model written by ``mlff2d train``.

    Energies in eV, forces in eV/Å, stress in eV/Å³ (ASE conventions), per-atom
    ``energies`` in eV. Sets the allocator so that repeated evaluations stay fast
    (:func:`mlff2d.runtime.keep_allocator_memory`).

    Parameters
    ----------
    model
        mace-torch ``*.model`` file, or several (a committee: mace-torch evaluates them on one
        graph and returns their mean, with ``energy_comm``, ``forces_comm``; see
        :class:`mlff2d.training.committee.CommitteeCalculator`).
    device
        ``"cpu"`` or ``"cuda"``.
    dtype
        Precision of the evaluation; ``"float64"`` for phonons (finite differences).
    head
        Head of a multi-head model (required if it has several).

    Raises
    ------
    ModelError
        If a file is missing or not a MACE model, committee members differ in elements or
        cut-off, or the head is ambiguous or unknown.
    """
    from mlff2d.runtime import keep_allocator_memory

    import_mace()
    from mace.calculators import MACECalculator

    if dtype not in ("float64", "float32"):
        raise InputError(f"unknown dtype '{dtype}'", "use float64 or float32")
    keep_allocator_memory()
    paths = [model] if isinstance(model, (str, Path)) else list(model)
    if len(paths) == 1:
        models = [load_model(paths[0], device)]
    else:
        from mlff2d.training.committee import load_members

        models = load_members(paths, device)
    head = resolve_head(models[0], head, str(paths[0]))
    return MACECalculator(models=models, device=device, default_dtype=dtype, head=head)
