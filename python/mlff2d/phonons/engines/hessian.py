"""The analytic MACE Hessian (autograd): force constants without displaced supercells."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from numpy.typing import NDArray

from mlff2d.phonons.engines.base import register
from mlff2d.phonons.engines.batched import MACEBatchEngine


@register
class MACEHessianEngine(MACEBatchEngine):
    """The analytic MACE Hessian (autograd) as a route to force constants without displacements."""

    name = "mace-hessian"
    provides_force_constants = True

    def force_constants(self, atoms: Atoms) -> NDArray[np.float64]:  # noqa: D102
        return mace_hessian_force_constants(self, atoms, progress=True)


def mace_hessian_rows(
    engine: MACEBatchEngine,
    atoms: Atoms,
    rows: Sequence[int] | None = None,
    chunk: int = 16,
    progress: bool = False,
) -> NDArray[np.float64]:
    """Compute rows of the analytic MACE Hessian d²E/dx_a dx_b (eV/Å²) by double backward.

    Parameters
    ----------
    engine
        A MACE engine (its model, device and dtype are used).
    atoms
        The periodic cell.
    rows
        Flat Cartesian indices 3 i + α of the rows to compute; None for all 3 n_atoms.
    chunk
        Rows per vectorised backward pass (``torch.autograd.grad(is_grads_batched=True)``).
    progress
        Show a progress bar.

    Returns
    -------
    Array of shape (len(rows), 3 n_atoms).
    """
    import torch
    from mace.tools import torch_geometric
    from rich.progress import track

    data = torch_geometric.Batch.from_data_list([engine.graph(atoms)]).to(engine.device).to_dict()
    # training=True keeps the graph of the forces (create_graph) for the second derivative
    out = engine.model(data, compute_force=True, compute_stress=False, training=True)
    forces = out["forces"].reshape(-1)
    pos = data["positions"]
    n3 = forces.numel()
    rows = list(range(n3)) if rows is None else list(rows)
    result = np.zeros((len(rows), n3))
    starts = range(0, len(rows), chunk)
    for start in track(starts, description="Hessian rows", disable=not progress):
        idx = rows[start : start + chunk]
        eye = torch.zeros((len(idx), n3), dtype=forces.dtype, device=forces.device)
        eye[torch.arange(len(idx)), torch.as_tensor(idx)] = 1.0
        try:
            (g,) = torch.autograd.grad(forces, pos, eye, retain_graph=True, is_grads_batched=True)
        except RuntimeError:  # an op without a batching rule: one row at a time
            g = torch.stack([torch.autograd.grad(forces, pos, e, retain_graph=True)[0] for e in eye])
        result[start : start + len(idx)] = -g.detach().reshape(len(idx), n3).to("cpu", torch.float64)
    return result


def mace_hessian_force_constants(
    engine: MACEBatchEngine, atoms: Atoms, progress: bool = False
) -> NDArray[np.float64]:
    """Compute the force constants of a periodic cell from the analytic MACE Hessian (autograd).

    The Hessian of :func:`mace_hessian_rows` (all rows), symmetrised.

    Parameters
    ----------
    engine
        The MACE engine whose model gives the energy.
    atoms
        The (super)cell; periodic images are folded in as in a finite-displacement supercell.
    progress
        Show a progress bar over Hessian rows.

    Returns
    -------
    Array of shape (n_atoms, n_atoms, 3, 3), eV/Å², Phonopy's ``force_constants`` layout.
    """
    n = len(atoms)
    h = mace_hessian_rows(engine, atoms, progress=progress).reshape(n, 3, n, 3)
    h = 0.5 * (h + h.transpose(2, 3, 0, 1))
    return np.ascontiguousarray(h.transpose(0, 2, 1, 3))
