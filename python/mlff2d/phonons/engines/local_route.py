"""The exact local route of the batched MACE engine for one-atom displacements.

When a supercell is large compared with the model's receptive field, the forces of a supercell
with one atom displaced equal the reference forces plus the change of the site energies of the
cluster within ``layers`` hops of the displaced atom (:mod:`mlff2d.phonons.locality`). The
cluster is evaluated alone, which is exact and much cheaper than the whole cell.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from ase import Atoms
from numpy.typing import NDArray

from mlff2d.phonons.locality import Cluster, NeighbourTable, cluster_around, displaced_atom

logger = logging.getLogger(__name__)

#: (structure index, displaced atom, displacement in Å) of a structure on the local route.
LocalItem = tuple[int, int, NDArray[np.float64]]


def _cell_key(atoms: Atoms) -> bytes:
    return atoms.numbers.tobytes() + atoms.cell.array.round(10).tobytes()


class LocalPlan:
    """What the local route keeps of one undisplaced supercell.

    Attributes
    ----------
    reference
        The undisplaced supercell.
    forces
        Its forces (eV/Å), from a whole-cell evaluation.
    table
        Its neighbour table (cutoff ``r_max + skin``).
    node_attrs
        One-hot species of the supercell atoms (mace-torch ``node_attrs``).
    base
        Its mace-torch graph (for the per-graph fields: head, weights ...).
    clusters
        Cluster of each displaced atom (built on first use).
    ref_grads
        Gradient of the cluster's site energies at the reference positions, per displaced atom.
    """

    def __init__(
        self, reference: Atoms, forces: NDArray[np.float64], table: NeighbourTable, node_attrs: Any, base: Any
    ) -> None:
        self.reference = reference
        self.forces = forces
        self.table = table
        self.node_attrs = node_attrs
        self.base = base
        self.clusters: dict[int, Cluster | None] = {}
        self.ref_grads: dict[int, NDArray[np.float64]] = {}
        self.usable = True
        self._key = _cell_key(reference)

    def matches(self, atoms: Atoms) -> bool:
        """True if ``atoms`` is this plan's reference (species, cell and positions)."""
        same_cell = _cell_key(atoms) == self._key
        return same_cell and np.abs(atoms.positions - self.reference.positions).max() < 1e-9

    def displaced_atom(self, atoms: Atoms, max_displacement: float) -> tuple[int, NDArray[np.float64]] | None:
        """The one atom ``atoms`` has moved from the reference and its displacement (Å), else None.

        None also when the displacement exceeds ``max_displacement`` Å.
        """
        ref = self.reference
        if len(atoms) != len(ref) or not np.array_equal(atoms.numbers, ref.numbers):
            return None
        if np.abs(atoms.cell.array - ref.cell.array).max() > 1e-10:
            return None
        moved = displaced_atom(atoms.positions, ref.positions, ref.cell.array, np.asarray(ref.pbc))
        if moved is None or np.linalg.norm(moved[1]) > max_displacement:
            return None
        return moved

    def cluster(self, i: int, cutoff: float, layers: int) -> Cluster | None:
        """The cluster of ``layers`` hops of length < ``cutoff`` (Å) around atom ``i`` (cached)."""
        if i not in self.clusters:
            self.clusters[i] = cluster_around(self.table, i, layers, cutoff)
        return self.clusters[i]


class LocalRoute:
    """Mixin of :class:`~mlff2d.phonons.engines.batched.MACEBatchEngine`: the local route."""

    #: Largest displacement (Å) evaluated on the local route (phonopy uses 0.01 Å).
    local_max_displacement: ClassVar[float] = 0.05
    #: The local route is used only when a cluster has fewer nodes than this fraction of the cell.
    local_max_fraction: ClassVar[float] = 0.6

    model: Any
    device: str
    dtype: Any
    r_max: float
    layers: int | None
    local: bool
    local_nodes: int
    stats: dict[str, int]
    _plan: LocalPlan | None

    def _cluster(self, plan: LocalPlan, i: int) -> Cluster | None:
        """The cluster of atom ``i``; hop cutoff ``r_max`` + 2 x the largest displacement."""
        return plan.cluster(i, self.r_max + 2 * self.local_max_displacement, self.layers or 0)

    def _local_plan(self, reference: Atoms) -> LocalPlan | None:
        """The reference forces and neighbour table of ``reference`` (cached), or None."""
        if not self.local or self.layers is None:
            return None
        if self._plan is not None and self._plan.matches(reference):
            return self._plan if self._plan.usable else None
        base = self.base_graph(reference)  # type: ignore[attr-defined]
        f_ref = self.forward([reference])[0]  # type: ignore[attr-defined]
        snd, rcv = base.edge_index.numpy()
        pos = reference.positions
        lengths = np.linalg.norm(pos[rcv] - pos[snd] + base.shifts.numpy(), axis=1)
        table = NeighbourTable(
            snd, rcv, base.unit_shifts.numpy().round().astype(np.int64), lengths, len(reference)
        )
        self._plan = LocalPlan(reference.copy(), f_ref, table, base.node_attrs, base)
        center = int(np.argmax(reference.numbers))  # a probe; every cluster is checked again on use
        probe = self._cluster(self._plan, center)
        self._plan.usable = probe is not None and probe.n_nodes <= self.local_max_fraction * len(reference)
        logger.info(
            "local route %s (cluster of %s nodes for %d layers x %.2f Å in a %d-atom cell)",
            "on" if self._plan.usable else "off",
            probe.n_nodes if probe is not None else "overlapping-image",
            self.layers,
            self.r_max,
            len(reference),
        )
        return self._plan if self._plan.usable else None

    def _compute_planned(self, plan: LocalPlan, structures: Sequence[Atoms]) -> list[NDArray[np.float64]]:
        """Forces of ``structures``: one-atom displacements locally, anything else as whole cells."""
        out: list[NDArray[np.float64] | None] = [None] * len(structures)
        local: list[LocalItem] = []
        whole: list[int] = []
        for n, atoms in enumerate(structures):
            moved = plan.displaced_atom(atoms, self.local_max_displacement)
            cluster = self._cluster(plan, moved[0]) if moved is not None else None
            if moved is None or cluster is None or cluster.n_nodes > self.local_max_fraction * len(atoms):
                whole.append(n)
            else:
                local.append((n, *moved))
        if whole:
            forces = self._compute_whole([structures[n] for n in whole])  # type: ignore[attr-defined]
            for n, f in zip(whole, forces, strict=True):
                out[n] = f
        if local:
            for (n, _, _), f in zip(local, self._compute_local(plan, local), strict=True):
                out[n] = f
        self.stats["whole_cell"] += len(whole)
        self.stats["local"] += len(local)
        return out  # type: ignore[return-value]

    def _cluster_graph(self, plan: LocalPlan, cluster: Cluster, positions: NDArray[np.float64]) -> Any:
        """``cluster`` at the supercell ``positions`` as a mace-torch graph (images unwrapped, no cell)."""
        import torch
        from mace.tools.torch_geometric.data import Data

        pos = positions[cluster.atoms] + cluster.images @ plan.reference.cell.array
        vec = pos[cluster.receivers] - pos[cluster.senders]
        keep = np.linalg.norm(vec, axis=1) < self.r_max
        edges = np.stack([cluster.senders[keep], cluster.receivers[keep]])
        n_atoms = len(plan.reference)
        fields = {}
        for k in plan.base.keys:
            v = plan.base[k]
            if k in ("edge_index", "shifts", "unit_shifts", "positions", "node_attrs"):
                continue
            if isinstance(v, torch.Tensor) and v.ndim >= 1 and v.shape[0] == n_atoms:
                v = v[torch.as_tensor(cluster.atoms)]
            fields[k] = v
        zeros = torch.zeros((edges.shape[1], 3), dtype=self.dtype)
        fields.update(
            positions=torch.as_tensor(pos, dtype=self.dtype),
            node_attrs=plan.node_attrs[torch.as_tensor(cluster.atoms)],
            edge_index=torch.as_tensor(edges, dtype=torch.long),
            shifts=zeros,
            unit_shifts=zeros.clone(),
            cell=torch.zeros((3, 3), dtype=self.dtype),
            num_nodes=cluster.n_nodes,
        )
        return Data(**fields)

    def _site_gradients(self, graphs: list[Any], masks: list[NDArray[np.bool_]]) -> list[NDArray[np.float64]]:
        """∇ of the summed site energies of ``masks`` per cluster graph, eV/Å, one pass."""
        import torch
        from mace.tools import torch_geometric

        batch = torch_geometric.Batch.from_data_list(graphs).to(self.device)
        data = batch.to_dict()
        out = self.model(data, compute_force=False, compute_stress=False, training=False)
        mask = torch.as_tensor(np.concatenate(masks), device=self.device)
        energy = out["node_energy"][mask].sum()
        (grad,) = torch.autograd.grad(energy, data["positions"])
        grad = grad.detach().to("cpu", dtype=torch.float64).numpy()
        ptr = batch["ptr"].cpu().numpy()
        return [grad[ptr[k] : ptr[k + 1]] for k in range(len(graphs))]

    def _local_gradients(
        self, plan: LocalPlan, items: list[LocalItem], jobs: list[tuple[int, int]]
    ) -> dict[tuple[int, int], NDArray[np.float64]]:
        """Site-energy gradients of the cluster of each job (item index or -1 for the reference, atom)."""
        grads: dict[tuple[int, int], NDArray[np.float64]] = {}
        start = 0
        while start < len(jobs):
            chunk, nodes = [], 0
            while start < len(jobs) and (not chunk or nodes < self.local_nodes):
                chunk.append(jobs[start])
                nodes += plan.clusters[jobs[start][1]].n_nodes  # type: ignore[union-attr]
                start += 1
            graphs, masks = [], []
            for k, i in chunk:
                cluster = plan.clusters[i]
                pos = plan.reference.positions
                if k >= 0:
                    pos = pos.copy()
                    pos[i] += items[k][2]
                graphs.append(self._cluster_graph(plan, cluster, pos))  # type: ignore[arg-type]
                masks.append(cluster.sites)  # type: ignore[union-attr]
            for job, g in zip(chunk, self._site_gradients(graphs, masks), strict=True):
                grads[job] = g
        return grads

    def _compute_local(self, plan: LocalPlan, items: list[LocalItem]) -> list[NDArray[np.float64]]:
        """Forces of one-atom displacements: reference forces + the cluster's site-energy change.

        ``items`` are (structure index, displaced atom, displacement in Å); the cluster is
        placed at the reference positions with that one atom moved.
        """
        jobs: list[tuple[int, int]] = []  # (item index or -1 for the reference, displaced atom)
        for k, (_, i, _) in enumerate(items):
            if i not in plan.ref_grads and (-1, i) not in jobs:
                jobs.append((-1, i))
            jobs.append((k, i))
        grads = self._local_gradients(plan, items, jobs)
        for (k, i), g in grads.items():
            if k < 0:
                plan.ref_grads[i] = g
        out = []
        for k, (_, i, _) in enumerate(items):
            forces = plan.forces.copy()
            np.add.at(forces, plan.clusters[i].atoms, -(grads[(k, i)] - plan.ref_grads[i]))  # type: ignore[union-attr]
            out.append(forces)
        return out
