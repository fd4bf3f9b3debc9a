"""Force engines: "forces for this list of displaced supercells", with a cache.

One interface, :class:`ForceEngine.compute`, and a registry of back ends (:data:`ENGINES`):

``ase``
    Any ASE calculator, one structure at a time (the SW teacher through LAMMPS, a
    ``MACECalculator``, a DFT calculator).
``mace-batched``
    A MACE model evaluated on many displaced supercells per forward pass. The neighbour graph
    of the undisplaced supercell is built once with a skin and filtered per structure to the
    model cutoff (exactly the edges a fresh neighbour list would give), so only positions
    change between structures. The batch size is chosen from the free memory (CPU or CUDA).
    When the supercell is large compared with the model's receptive field, a one-atom
    displacement is evaluated on a small cluster around the displaced atom instead of the
    whole cell, exactly (:mod:`mlff2d.phonons.locality`).
``lammps``
    The SW teacher evaluated by LAMMPS (``SWTeacher``), serially.

:func:`compute_force_sets` runs an engine over displaced supercells and caches one ``.npy``
file per displacement under a key made from the structure, so an interrupted run resumes.
:func:`mace_hessian_force_constants` is the second route: the analytic MACE Hessian.
"""

from __future__ import annotations

import hashlib
import logging
import os
import resource
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from ase import Atoms
from numpy.typing import NDArray

from mlff2d.errors import CalculationFailed, InputError, ModelError
from mlff2d.phonons.locality import Cluster, NeighbourTable, cluster_around, displaced_atom

logger = logging.getLogger(__name__)

#: name -> engine class. The registry of force back ends.
ENGINES: dict[str, type[ForceEngine]] = {}


def register(cls: type[ForceEngine]) -> type[ForceEngine]:
    """Class decorator adding a force engine to :data:`ENGINES` under ``cls.name``."""
    ENGINES[cls.name] = cls
    return cls


class ForceEngine(ABC):
    """Computes forces (eV/Å) for a list of structures."""

    name: ClassVar[str] = ""
    #: True for engines that give force constants directly (:meth:`force_constants`).
    provides_force_constants: ClassVar[bool] = False

    @abstractmethod
    def compute(
        self, structures: Sequence[Atoms], reference: Atoms | None = None
    ) -> list[NDArray[np.float64]]:
        """Compute the forces of each structure: a list of arrays of shape (n_atoms, 3) in eV/Å.

        ``reference`` is the undisplaced supercell, when the structures are displacements of it;
        engines may use it to go faster (the results are the same).
        """

    @property
    def preferred_chunk(self) -> int:
        """How many structures to hand to :meth:`compute` at once (for caching and progress)."""
        return 1

    def describe(self) -> dict[str, Any]:
        """Describe the engine in plain types for ``summary.yaml``."""
        return {"engine": self.name}

    def force_constants(self, atoms: Atoms) -> NDArray[np.float64]:
        """Force constants (n, n, 3, 3) in eV/Å² of a periodic cell, for engines that can."""
        raise NotImplementedError(f"engine {self.name!r} gives forces, not force constants")


@register
class ASEEngine(ForceEngine):
    """Any ASE calculator, called once per structure.

    Parameters
    ----------
    calculator
        The ASE calculator; it is attached to a copy of each structure.
    """

    name = "ase"

    def __init__(self, calculator: Any) -> None:
        self.calculator = calculator

    def compute(  # noqa: D102
        self, structures: Sequence[Atoms], reference: Atoms | None = None
    ) -> list[NDArray[np.float64]]:
        out = []
        for atoms in structures:
            a = atoms.copy()
            a.calc = self.calculator
            out.append(np.asarray(a.get_forces(), dtype=np.float64).copy())
        return out

    def describe(self) -> dict[str, Any]:  # noqa: D102
        return {"engine": self.name, "calculator": type(self.calculator).__name__}


@register
class LammpsEngine(ASEEngine):
    """The SW teacher through the LAMMPS library, serially (``pair_style sw/mod``)."""

    name = "lammps"

    def __init__(self, potential: str | Path | None = None) -> None:
        from mlff2d.reference.sw import SWTeacher

        super().__init__(SWTeacher(potential=potential))


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
        from mlff2d.training import calculator as training_calculator
    except ImportError:
        training_calculator = None
    if training_calculator is not None:
        return training_calculator(path, device=device)
    from mace.calculators import MACECalculator

    try:
        return MACECalculator(model_paths=str(path), device=device)
    except Exception as exc:  # noqa: BLE001 - torch/pickle raise many types
        raise ModelError(f"cannot load {path} as a MACE model: {exc}") from None


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _current_rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def available_memory_bytes(device: str) -> int:
    """Free memory (bytes) on ``device``: CUDA free memory or the host's ``MemAvailable``."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info()
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


@register
class MACEBatchEngine(ForceEngine):
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
    #: Largest displacement (Å) evaluated on the local route (phonopy uses 0.01 Å).
    local_max_displacement: ClassVar[float] = 0.05
    #: The local route is used only when a cluster has fewer nodes than this fraction of the cell.
    local_max_fraction: ClassVar[float] = 0.6

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
        import torch

        from mlff2d.runtime import keep_allocator_memory

        keep_allocator_memory()
        if isinstance(model, str | Path):
            model = load_mace_calculator(model, device)
        if hasattr(model, "models"):  # a MACECalculator
            self.model = model.models[0]
            self.device = str(model.device)
        else:
            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            self.model = model.to(device)
            self.device = device
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
        self._plan: _LocalPlan | None = None
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
    def _base_graph(self, atoms: Atoms) -> Any:
        """Build the graph of ``atoms`` with cutoff ``r_max + skin`` (cached by cell and species)."""
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

    def _graph(self, base: Any, atoms: Atoms) -> Any:
        """Copy ``base`` to the positions of ``atoms`` with edges shorter than ``r_max``."""
        import torch

        pos = torch.as_tensor(atoms.positions, dtype=self.dtype)
        if float((pos - base.positions).abs().max()) > self.skin / 2:
            raise CalculationFailed(
                "a displacement exceeds half the neighbour skin", "raise skin or use smaller displacements"
            )
        snd, rcv = base.edge_index
        length = torch.linalg.norm(pos[rcv] - pos[snd] + base.shifts, dim=1)
        keep = length < self.r_max
        from mace.tools.torch_geometric.data import Data

        fields = {k: base[k] for k in base.keys}
        fields.update(
            positions=pos,
            edge_index=base.edge_index[:, keep],
            shifts=base.shifts[keep],
            unit_shifts=base.unit_shifts[keep],
            num_nodes=len(atoms),
        )
        return Data(**fields)

    def _forward(self, graphs: list[Any]) -> list[NDArray[np.float64]]:
        from mace.tools import torch_geometric

        batch = torch_geometric.Batch.from_data_list(graphs).to(self.device)
        out = self.model(batch.to_dict(), compute_stress=False, training=False)
        forces = out["forces"].detach().to("cpu", dtype=torch_float64()).numpy()
        ptr = batch["ptr"].cpu().numpy()
        return [forces[ptr[i] : ptr[i + 1]].copy() for i in range(len(graphs))]

    def _choose_batch_size(self, todo: list[Atoms]) -> list[NDArray[np.float64]]:
        """Set :attr:`batch_size` while evaluating the first structures of ``todo`` (popped).

        The first structure alone gives the memory per structure, which caps the batch at
        ``memory_fraction`` of the free memory. On CUDA the cap is used. On CPU, where large
        graphs are not always faster per structure, batch sizes 1, 2, 4, ... up to the cap are
        timed on the next structures and the fastest is kept.
        """
        import time

        import torch

        cuda = self.device.startswith("cuda")
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        else:
            before = _current_rss_bytes()
        first = todo.pop(0)
        out = self._forward([self._graph(self._base_graph(first), first)])
        used = (torch.cuda.max_memory_allocated() if cuda else _peak_rss_bytes()) - before
        used = max(used, 1 << 20)
        free = available_memory_bytes(self.device)
        cap = int(np.clip(self.memory_fraction * free // used, 1, self.max_batch))
        best, best_t, size = 1, np.inf, 1
        while not cuda and size <= cap and len(todo) >= size:
            chunk = [todo.pop(0) for _ in range(size)]
            t0 = time.perf_counter()
            out += self._forward([self._graph(self._base_graph(a), a) for a in chunk])
            per = (time.perf_counter() - t0) / size
            if per > 0.95 * best_t:
                break
            best, best_t, size = size, per, size * 2
        self.batch_size = cap if cuda else best
        logger.info(
            "MACE batch size %d (%.0f MiB per structure, cap %d from %.0f MiB free on %s)",
            self.batch_size,
            used / 2**20,
            cap,
            free / 2**20,
            self.device,
        )
        return out

    def compute(  # noqa: D102
        self, structures: Sequence[Atoms], reference: Atoms | None = None
    ) -> list[NDArray[np.float64]]:
        plan = self._local_plan(reference) if reference is not None else None
        if plan is None:
            self.stats["whole_cell"] += len(structures)
            return self._compute_whole(structures)
        out: list[NDArray[np.float64] | None] = [None] * len(structures)
        local: list[tuple[int, int, NDArray[np.float64]]] = []  # (structure, atom, displacement)
        whole: list[int] = []
        for n, atoms in enumerate(structures):
            moved = plan.displaced_atom(atoms, self.local_max_displacement)
            cluster = plan.cluster(moved[0], self.r_max, self.layers) if moved is not None else None
            if moved is None or cluster is None or cluster.n_nodes > self.local_max_fraction * len(atoms):
                whole.append(n)
            else:
                local.append((n, *moved))
        if whole:
            for n, f in zip(whole, self._compute_whole([structures[n] for n in whole]), strict=True):
                out[n] = f
        if local:
            for (n, _, _), f in zip(local, self._compute_local(plan, local), strict=True):
                out[n] = f
        self.stats["whole_cell"] += len(whole)
        self.stats["local"] += len(local)
        return out  # type: ignore[return-value]

    # -- the local route ---------------------------------------------------------------------
    def _local_plan(self, reference: Atoms) -> _LocalPlan | None:
        """The reference forces and neighbour table of ``reference`` (cached), or None."""
        if not self.local or self.layers is None:
            return None
        if self._plan is not None and self._plan.matches(reference):
            return self._plan if self._plan.usable else None
        base = self._base_graph(reference)
        f_ref = self._forward([self._graph(base, reference)])[0]
        snd, rcv = base.edge_index.numpy()
        pos = reference.positions
        shifts = base.shifts.numpy()
        lengths = np.linalg.norm(pos[rcv] - pos[snd] + shifts, axis=1)
        table = NeighbourTable(
            snd, rcv, base.unit_shifts.numpy().round().astype(np.int64), lengths, len(reference)
        )
        self._plan = _LocalPlan(reference.copy(), f_ref, table, base.node_attrs, base)
        center = int(np.argmax(reference.numbers))  # a probe; every cluster is checked again on use
        probe = self._plan.cluster(center, self.r_max, self.layers)
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

    def _cluster_graph(self, plan: _LocalPlan, cluster: Cluster, positions: NDArray[np.float64]) -> Any:
        """``cluster`` at the supercell ``positions`` as a mace-torch graph (images unwrapped, no cell)."""
        import torch
        from mace.tools.torch_geometric.data import Data

        cell = plan.reference.cell.array
        pos = positions[cluster.atoms] + cluster.images @ cell
        vec = pos[cluster.receivers] - pos[cluster.senders]
        keep = np.linalg.norm(vec, axis=1) < self.r_max
        edges = np.stack([cluster.senders[keep], cluster.receivers[keep]])
        n_edges = edges.shape[1]
        base = plan.base
        n_atoms = len(plan.reference)
        fields = {}
        for k in base.keys:
            v = base[k]
            if k in ("edge_index", "shifts", "unit_shifts", "positions", "node_attrs"):
                continue
            if isinstance(v, torch.Tensor) and v.ndim >= 1 and v.shape[0] == n_atoms:
                v = v[torch.as_tensor(cluster.atoms)]
            fields[k] = v
        zeros = torch.zeros((n_edges, 3), dtype=self.dtype)
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
        grad = grad.detach().to("cpu", dtype=torch_float64()).numpy()
        ptr = batch["ptr"].cpu().numpy()
        return [grad[ptr[k] : ptr[k + 1]] for k in range(len(graphs))]

    def _compute_local(
        self, plan: _LocalPlan, items: list[tuple[int, int, NDArray[np.float64]]]
    ) -> list[NDArray[np.float64]]:
        """Forces of one-atom displacements: reference forces + the cluster's site-energy change.

        ``items`` are (structure index, displaced atom, displacement in Å); the cluster is
        placed at the reference positions with that one atom moved.
        """
        jobs: list[tuple[int, int]] = []  # (item index or -1 for the reference, displaced atom)
        for k, (_, i, _) in enumerate(items):
            if i not in plan.ref_grads and (-1, i) not in jobs:
                jobs.append((-1, i))
            jobs.append((k, i))
        grads: dict[tuple[int, int], NDArray[np.float64]] = {}
        start = 0
        while start < len(jobs):
            chunk, nodes = [], 0
            while start < len(jobs) and (not chunk or nodes < self.local_nodes):
                chunk.append(jobs[start])
                nodes += plan.clusters[jobs[start][1]].n_nodes
                start += 1
            graphs, masks = [], []
            for k, i in chunk:
                cluster = plan.clusters[i]
                pos = plan.reference.positions
                if k >= 0:
                    pos = pos.copy()
                    pos[i] += items[k][2]
                graphs.append(self._cluster_graph(plan, cluster, pos))
                masks.append(cluster.sites)
            for job, g in zip(chunk, self._site_gradients(graphs, masks), strict=True):
                grads[job] = g
        for (k, i), g in grads.items():
            if k < 0:
                plan.ref_grads[i] = g
        out = []
        for k, (_, i, _) in enumerate(items):
            cluster = plan.clusters[i]
            forces = plan.forces.copy()
            np.add.at(forces, cluster.atoms, -(grads[(k, i)] - plan.ref_grads[i]))
            out.append(forces)
        return out

    # -- the whole-cell route ----------------------------------------------------------------
    def _compute_whole(self, structures: Sequence[Atoms]) -> list[NDArray[np.float64]]:
        """Forces of whole displaced supercells, ``batch_size`` per forward pass."""
        out: list[NDArray[np.float64]] = []
        todo = list(structures)
        while todo:
            if self.batch_size is None:
                out += self._choose_batch_size(todo)
                continue
            chunk, todo = todo[: self.batch_size], todo[self.batch_size :]
            # each structure on the graph of its reference (rebuilt only when it changes)
            out += self._forward([self._graph(self._base_graph(a), a) for a in chunk])
        return out


class _LocalPlan:
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
        self._key = reference.numbers.tobytes() + reference.cell.array.round(10).tobytes()

    def matches(self, atoms: Atoms) -> bool:
        """True if ``atoms`` is this plan's reference (species, cell and positions)."""
        key = atoms.numbers.tobytes() + atoms.cell.array.round(10).tobytes()
        return key == self._key and np.abs(atoms.positions - self.reference.positions).max() < 1e-9

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

    def cluster(self, i: int, r_max: float, layers: int) -> Cluster | None:
        """The cluster around atom ``i`` (cached); hop cutoff ``r_max`` + 2 x the largest displacement."""
        if i not in self.clusters:
            cutoff = r_max + 2 * MACEBatchEngine.local_max_displacement
            self.clusters[i] = cluster_around(self.table, i, layers, cutoff)
        return self.clusters[i]


@register
class MACEHessianEngine(MACEBatchEngine):
    """The analytic MACE Hessian (autograd) as a route to force constants without displacements."""

    name = "mace-hessian"
    provides_force_constants = True

    def force_constants(self, atoms: Atoms) -> NDArray[np.float64]:  # noqa: D102
        return mace_hessian_force_constants(self, atoms, progress=True)


def torch_float64() -> Any:
    """``torch.float64`` (imported lazily)."""
    import torch

    return torch.float64


def make_engine(name: str, **kwargs: Any) -> ForceEngine:
    """Build the engine registered under ``name`` with ``kwargs``."""
    if name not in ENGINES:
        raise InputError(f"unknown force engine {name!r}", f"choose one of {sorted(ENGINES)}")
    return ENGINES[name](**kwargs)


# -- cache -----------------------------------------------------------------------------------
def structure_key(atoms: Atoms) -> str:
    """Return a stable key (hex digest) of species, cell, periodicity and positions (rounded to 1e-8 Å)."""
    h = hashlib.sha256()
    h.update(atoms.numbers.astype(np.int64).tobytes())
    h.update(np.round(atoms.cell.array, 8).tobytes())
    h.update(np.asarray(atoms.pbc, dtype=np.int8).tobytes())
    h.update(np.round(atoms.positions, 8).tobytes())
    return h.hexdigest()[:24]


class ForceCache:
    """One ``<key>.npy`` file of forces (eV/Å) per structure in ``folder``; atomic writes."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, atoms: Atoms) -> Path:
        """Return the cache file of ``atoms``."""
        return self.folder / f"{structure_key(atoms)}.npy"

    def get(self, atoms: Atoms) -> NDArray[np.float64] | None:
        """Return the cached forces of ``atoms`` or None."""
        p = self.path(atoms)
        if not p.is_file():
            return None
        f = np.load(p)
        return f if f.shape == (len(atoms), 3) else None

    def put(self, atoms: Atoms, forces: NDArray[np.float64]) -> None:
        """Store ``forces`` of ``atoms`` atomically."""
        p = self.path(atoms)
        tmp = p.with_name(f".{p.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, np.asarray(forces, dtype=np.float64))
        os.replace(tmp, p)


def compute_force_sets(
    engine: ForceEngine,
    structures: Sequence[Atoms],
    cache: ForceCache | None = None,
    progress: bool = True,
    description: str = "displacements",
    on_chunk: Callable[[int], None] | None = None,
    reference: Atoms | None = None,
) -> tuple[NDArray[np.float64], int]:
    """Compute the forces of all ``structures``, taking cached ones from ``cache``.

    Parameters
    ----------
    engine
        The force back end.
    structures
        Displaced supercells, all with the same number of atoms.
    cache
        Where finished displacements are stored; None disables caching.
    progress
        Show a progress bar.
    description
        Label of the progress bar.
    on_chunk
        Called with the number of structures computed so far after every chunk (tests use it
        to interrupt a run).
    reference
        The undisplaced supercell (lets the MACE engine use its exact local route).

    Returns
    -------
    forces
        Array of shape (n_structures, n_atoms, 3), eV/Å.
    n_computed
        How many structures were evaluated (the rest came from the cache).
    """
    n = len(structures)
    forces: list[NDArray[np.float64] | None] = [None] * n
    if cache is not None:
        for i, a in enumerate(structures):
            forces[i] = cache.get(a)
    todo = [i for i in range(n) if forces[i] is None]
    if n - len(todo):
        logger.info("%d of %d %s taken from the cache", n - len(todo), n, description)
    from rich.progress import Progress

    done = 0
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(description, total=n, completed=n - len(todo))
        while todo:
            k = max(1, engine.preferred_chunk)
            chunk, todo = todo[:k], todo[k:]
            result = engine.compute([structures[i] for i in chunk], reference=reference)
            for i, f in zip(chunk, result, strict=True):
                forces[i] = f
                if cache is not None:
                    cache.put(structures[i], f)
            done += len(chunk)
            bar.update(task, advance=len(chunk))
            if on_chunk is not None:
                on_chunk(done)
    return np.array(forces, dtype=np.float64), done


# -- Hessian route ---------------------------------------------------------------------------
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

    graph = engine._graph(engine._base_graph(atoms), atoms)
    data = torch_geometric.Batch.from_data_list([graph]).to(engine.device).to_dict()
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

    Parameters
    ----------
    engine
        A MACE engine (its model, device and dtype are used).
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
