"""ASE calculator for our MACE models (mace-torch's ``MACECalculator``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from mlff2d.errors import InputError
from mlff2d.training.data import import_mace, load_model, resolve_head


def calculator(
    model: str | Path,
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
        mace-torch ``*.model`` file.
    device
        ``"cpu"`` or ``"cuda"``.
    dtype
        Precision of the evaluation; ``"float64"`` for phonons (finite differences).
    head
        Head of a multi-head model (required if it has several).

    Raises
    ------
    ModelError
        If the file is missing or not a MACE model, or the head is ambiguous or unknown.
    """
    from mlff2d.runtime import keep_allocator_memory

    import_mace()
    from mace.calculators import MACECalculator

    if dtype not in ("float64", "float32"):
        raise InputError(f"unknown dtype '{dtype}'", "use float64 or float32")
    keep_allocator_memory()
    mdl = load_model(model, device)
    head = resolve_head(mdl, head, str(model))
    return MACECalculator(models=mdl, device=device, default_dtype=dtype, head=head)
