"""The batched MACE engine: many displaced supercells per forward pass on one neighbour graph.

The neighbour graph of the undisplaced supercell is built once with a skin and filtered per
structure to the model cutoff (exactly the edges a fresh neighbour list would give), so only
positions change between structures. The batch size is chosen from the free memory
(:mod:`.sizing`); one-atom displacements of a large supercell take the exact local route
(:mod:`.local_route`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from numpy.typing import NDArray

from mlff2d.errors import CalculationFailed, ModelError
from mlff2d.phonons.engines.base import ForceEngine, register
from mlff2d.phonons.engines.local_route import LocalPlan, LocalRoute
from mlff2d.phonons.engines.sizing import choose_batch_size


def load_mace_calculator(model: str | Path, device: str = "auto") -> Any:
    """Load a ``MACECalculator`` for a ``*.model`` file (the training stage's loader when present).

    Parameters
    ----------
    model
        Path of a mace-torch model file.
    device
        ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available).
    """
    import torch

    path = Path(model)
    if not path.is_file():
        raise ModelError(f"model file {path} not found", "pass a mace-torch *.model file")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        from mlff2d.training.calculator import calculator as training_calculator
    except ImportError:
        training_calculator = None
    if training_calculator is not None:
        return training_calculator(path, device=device)
    from mace.calculators import MACECalculator

    try:
        return MACECalculator(model_paths=str(path), device=device)
    except Exception as exc:  # noqa: BLE001 - torch/pickle raise many types
        raise ModelError(f"cannot load {path} as a MACE model: {exc}") from None


@register
class MACEBatchEngine(LocalRoute, ForceEngine):
    """A MACE model evaluated on batches of displaced supercells.

    Parameters
    ----------
    model
        A ``*.model`` path, a ``MACECalculator`` or a mace-torch model (``torch.nn.Module``).
    device
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    batch_size
        Structures per forward pass; ``None`` chooses it from the free memory after a probe.
    skin
        Extra neighbour-list distance (Å) so that one graph serves all displacements.
    memory_fraction
        Fraction of the free memory a batch may use when ``batch_size`` is None.
    max_batch
        Upper bound of the automatic batch size.
    local
        Use the exact local route for one-atom displacements when a ``reference`` is given
        and the supercell is large enough (:mod:`mlff2d.phonons.locality`).
    local_nodes
        Cluster nodes per forward pass on the local route.
    """

    name = "mace-batched"

    def __init__(
        self,
        model: Any,
        device: str = "auto",
        batch_size: int | None = None,
        skin: float = 1.0,
        memory_fraction: float = 0.4,
        max_batch: int = 64,
        local: bool = True,
        local_nodes: int = 2048,
    ) -> None:
        from mlff2d.runtime import keep_allocator_memory

        keep_allocator_memory()
        self.model, self.device = _torch_model(model, device)
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.dtype = next(self.model.parameters()).dtype
        self.r_max = float(self.model.r_max)
        self.z_table = [int(z) for z in self.model.atomic_numbers]
        self.heads = list(getattr(self.model, "heads", ["Default"]))
        self.skin = skin
        self.batch_size = batch_size
        self.memory_fraction = memory_fraction
        self.max_batch = max_batch
        self.local = local
        self.local_nodes = local_nodes
        self.layers = int(getattr(self.model, "num_interactions", 0)) or None
        self._base: tuple[bytes, Any] | None = None
        self._plan: LocalPlan | None = None
        self.stats = {"local": 0, "whole_cell": 0}

    @property
    def preferred_chunk(self) -> int:  # noqa: D102
        return max(self.batch_size or 0, 32)

    def describe(self) -> dict[str, Any]:  # noqa: D102
        return {
            "engine": self.name,
            "device": self.device,
            "dtype": str(self.dtype),
            "batch_size": self.batch_size,
            "skin_A": self.skin,
            "r_max_A": self.r_max,
            "layers": self.layers,
            "local_route": self.local,
            "evaluated": dict(self.stats),
        }

    # -- graphs ----------------------------------------------------------------------------
    def base_graph(self, atoms: Atoms) -> Any:
        """The graph of ``atoms`` with cutoff ``r_max + skin`` (cached by cell and species)."""
        from mace import data as mace_data
        from mace.tools import torch_tools, utils

        key = atoms.numbers.tobytes() + atoms.cell.array.round(10).tobytes()
        if self._base is not None and self._base[0] == key:
            moved = np.abs(atoms.positions - self._base[1].positions.numpy()).max()
            if moved <= self.skin / 2:  # same reference structure (within the skin)
                return self._base[1]
        missing = sorted(set(atoms.numbers.tolist()) - set(self.z_table))
        if missing:
            raise ModelError(
                f"the model has no elements with atomic numbers {missing}",
                "use a model trained on all elements of the structure",
            )
        with torch_tools.default_dtype(self.dtype):
            config = mace_data.config_from_atoms(atoms, head_name=self.heads[-1])
            graph = mace_data.AtomicData.from_config(
                config,
                z_table=utils.AtomicNumberTable(self.z_table),
                cutoff=self.r_max + self.skin,
                heads=self.heads,
            )
        self._base = (key, graph)
        return graph

    def graph(self, atoms: Atoms) -> Any:
        """The graph of ``atoms`` (edges shorter than ``r_max``), from its reference's base graph."""
        import torch
        from mace.tools.torch_geometric.data import Data

        base = self.base_graph(atoms)
        pos = torch.as_tensor(atoms.positions, dtype=self.dtype)
        if float((pos - base.positions).abs().max()) > self.skin / 2:
            raise CalculationFailed(
                "a displacement exceeds half the neighbour skin", "raise skin or use smaller displacements"
            )
        snd, rcv = base.edge_index
        length = torch.linalg.norm(pos[rcv] - pos[snd] + base.shifts, dim=1)
        keep = length < self.r_max
        fields = {k: base[k] for k in base.keys}
        fields.update(
            positions=pos,
            edge_index=base.edge_index[:, keep],
            shifts=base.shifts[keep],
            unit_shifts=base.unit_shifts[keep],
            num_nodes=len(atoms),
        )
        return Data(**fields)

    def forward(self, structures: list[Atoms]) -> list[NDArray[np.float64]]:
        """Forces (eV/Å) of whole ``structures`` in one forward pass."""
        import torch
        from mace.tools import torch_geometric

        graphs = [self.graph(a) for a in structures]
        batch = torch_geometric.Batch.from_data_list(graphs).to(self.device)
        out = self.model(batch.to_dict(), compute_stress=False, training=False)
        forces = out["forces"].detach().to("cpu", dtype=torch.float64).numpy()
        ptr = batch["ptr"].cpu().numpy()
        return [forces[ptr[i] : ptr[i + 1]].copy() for i in range(len(graphs))]

    # -- routes ----------------------------------------------------------------------------
    def compute(  # noqa: D102
        self, structures: Sequence[Atoms], reference: Atoms | None = None
    ) -> list[NDArray[np.float64]]:
        plan = self._local_plan(reference) if reference is not None else None
        if plan is None:
            self.stats["whole_cell"] += len(structures)
            return self._compute_whole(structures)
        return self._compute_planned(plan, structures)

    def _compute_whole(self, structures: Sequence[Atoms]) -> list[NDArray[np.float64]]:
        """Forces of whole displaced supercells, ``batch_size`` per forward pass."""
        out: list[NDArray[np.float64]] = []
        todo = list(structures)
        while todo:
            if self.batch_size is None:
                self.batch_size, first = choose_batch_size(
                    self.forward, todo, self.device, self.memory_fraction, self.max_batch
                )
                out += first
                continue
            chunk, todo = todo[: self.batch_size], todo[self.batch_size :]
            # each structure on the graph of its reference (rebuilt only when it changes)
            out += self.forward(chunk)
        return out


def _torch_model(model: Any, device: str) -> tuple[Any, str]:
    """The mace-torch module and device of a model path, ``MACECalculator`` or module."""
    if isinstance(model, str | Path):
        model = load_mace_calculator(model, device)
    if hasattr(model, "models"):  # a MACECalculator
        return model.models[0], str(model.device)
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return model.to(device), device
