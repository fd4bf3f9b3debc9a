"""The Symmetrix-XL route of ``pair_style mace``: LAMMPS graphs evaluated by Symmetrix-XL's kernels.

The plugin (``plugin/pair_mace_symmetrix.cpp``, through ``libmlff2d_symmetrix.so`` and the
embedded Python C API of the ``lmp`` or ``python`` process it runs in) builds the graph of a
step from LAMMPS's neighbour list and hands it to :meth:`PairEvaluator.compute`; this module
runs Symmetrix-XL's native evaluator on it and returns the node energies and the edge forces.

The graph is Symmetrix's receiver-major layout: ``num_nodes`` nodes, node ``i`` receiving
``num_neigh[i]`` edges in turn; edge ``e`` carries the neighbour's node index and type, the
vector ``xyz[e] = x_neighbour - x_receiver`` (Å) and its length ``r[e]``. The first
``num_local`` nodes are the atoms whose energies count (a rank's local atoms, or a chunk of
them); the others are halo atoms within ``r_max`` of them, whose first-layer features the
second layer needs. Their edges follow the local ones and may point at atoms that are no node
(index 0 then; only the types and vectors of those edges are used). The returned edge force
``p[e]`` is ``-dE/dxyz[e]`` (eV/Å) of the energy of the local nodes: the receiver of edge ``e``
gets ``-p[e]``, its neighbour ``+p[e]``, and the virial is ``sum_e xyz[e] (x) p[e]``.

Two evaluators of the same ``<model>.symmetrix/`` bundle (:mod:`mlff2d.training.symmetrix`):

* a whole graph (``num_local == num_nodes``: one rank with periodic images) goes to the
  compiled kernels, exactly as Symmetrix-XL's ASE calculator evaluates a periodic cell;
* a graph with halo nodes goes through the layer-by-layer interface of Symmetrix's native
  ``MACE`` evaluator: the first layer on all nodes, the second and the readouts on the local
  ones, then the reverse pass. That interface leaves out the first layer's residual (a
  constant per element, as the embedding is), which is measured once from an isolated atom of
  each element; a self-check on a small cell compares both evaluators before the first step.

Keep module-level imports light: the plugin imports this module inside LAMMPS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

LAMMPS_SUFFIX = "-lammps.pt"
#: largest energy (eV) or edge force (eV/Å) difference of the two evaluators in the self-check
SELF_CHECK_TOL = {"float64": 1e-8, "float32": 1e-3}


def source_model(lammps_model: str | Path) -> Path:
    """The mace-torch model file of a LAMMPS export: ``X.model-lammps.pt`` -> ``X.model``."""
    p = Path(lammps_model)
    name = p.name.removesuffix(LAMMPS_SUFFIX) if p.name.endswith(LAMMPS_SUFFIX) else p.name
    return p.with_name(name)


def open_route(lammps_model: str, dtype: str, request: str) -> tuple[PairEvaluator | None, str]:
    """The Symmetrix-XL evaluator of a LAMMPS model, or ``None`` and why not (one line).

    Parameters
    ----------
    lammps_model
        The ``*.model-lammps.pt`` file of ``pair_coeff``; its bundle is
        ``X.model.symmetrix/`` next to ``X.model``.
    dtype
        ``float64`` or ``float32`` (the LAMMPS model's).
    request
        ``auto``: only kernels prepared by ``mlff2d export`` (nothing compiles);
        ``yes``: prepare them now if needed.
    """
    from mlff2d.errors import Mlff2dError
    from mlff2d.training.symmetrix import choose_route

    src = source_model(lammps_model)
    if not src.is_file():
        return None, f"no mace-torch model {src.name} next to {Path(lammps_model).name}"
    choice = choose_route(src, dtype, "symmetrix" if request == "yes" else "auto")
    if choice.route != "symmetrix":
        return None, choice.reason
    try:
        ev = PairEvaluator(src, dtype)
    except Mlff2dError as exc:
        return None, exc.message
    return ev, choice.reason


class PairEvaluator:
    """Symmetrix-XL's evaluators of one model for LAMMPS graphs (see the module docstring).

    Parameters
    ----------
    model
        The mace-torch ``*.model`` file with a prepared ``<model>.symmetrix/`` bundle.
    dtype
        ``float64`` or ``float32``.
    """

    def __init__(self, model: Path, dtype: str) -> None:
        from mlff2d.training.symmetrix import Bundle, symmetrix_calculator

        self.calculator = symmetrix_calculator(model, dtype)  # keeps the kernels loaded
        self.whole = self.calculator.evaluator
        self.model_json = Bundle.of(model).model_json
        self.dtype = dtype
        self.r_cut = float(self.whole.r_cut)
        self.atomic_numbers = [int(z) for z in self.whole.atomic_numbers]
        self._layered: Any = None
        self._h1_offset: NDArray[np.float64] | None = None

    def compute(
        self,
        num_local: int,
        node_types: Any,
        num_neigh: Any,
        neigh_index: Any,
        neigh_types: Any,
        xyz: Any,
        r: Any,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Energies of the local nodes (eV, ``(num_local,)``) and edge forces (eV/Å, ``(E*3,)``).

        The arrays may be any buffers (the plugin passes memoryviews of its own vectors):
        ``int32`` node types ``(N,)``, edge counts ``(N,)``, neighbour indices and types
        ``(E,)``, ``float64`` vectors ``(E*3,)`` and lengths ``(E,)``.
        """
        g = (
            np.frombuffer(node_types, np.int32),
            np.frombuffer(num_neigh, np.int32),
            np.frombuffer(neigh_index, np.int32),
            np.frombuffer(neigh_types, np.int32),
            np.frombuffer(xyz, np.float64),
            np.frombuffer(r, np.float64),
        )
        n_edges = len(g[5])
        if num_local == len(g[0]):
            ev = self.whole
            ev.compute_node_energies_forces(len(g[0]), *g)
        else:
            ev = self.layered()
            self._run_layers(ev, num_local, *g)
        energies = np.array(ev.node_energies, dtype=np.float64)[:num_local]
        forces = np.array(ev.node_forces, dtype=np.float64)[: 3 * n_edges]
        return energies, forces

    def layered(self) -> Any:
        """Symmetrix's layer-by-layer evaluator, with its first-layer residual measured and checked."""
        if self._layered is None:
            import symmetrix

            from mlff2d.errors import ModelError

            cls = symmetrix.MACE if self.dtype == "float64" else symmetrix.MACEFloat
            ev = cls(str(self.model_json), "")
            self._h1_offset = self._residual(ev)
            self._layered = ev
            err = self._self_check()
            if err > SELF_CHECK_TOL[self.dtype]:
                self._layered = None
                raise ModelError(
                    f"Symmetrix-XL's layered and whole-graph evaluations differ by {err:.2e}",
                    "use pair_style mace symmetrix no (mace-torch)",
                )
        return self._layered

    def _residual(self, ev: Any) -> NDArray[np.float64]:
        """First-layer features of an isolated atom of each element: whole minus layered (per type)."""
        types = np.arange(len(self.atomic_numbers), dtype=np.int32)
        n = len(types)
        empty_i, empty_f = np.zeros(0, np.int32), np.zeros(0, np.float64)
        ev.compute_node_energies_forces(n, types, np.zeros(n, np.int32), empty_i, empty_i, empty_f, empty_f)
        whole = np.array(ev.H1, dtype=np.float64).reshape(n, -1)
        self._first_layer(ev, n, types, np.zeros(n, np.int32), empty_i, empty_f, empty_f, offset=False)
        return whole - np.array(ev.H1, dtype=np.float64).reshape(n, -1)

    def _first_layer(self, ev, n, types, num_neigh, neigh_types, xyz, r, offset=True) -> None:
        ev.compute_Y(xyz)
        ev.compute_R0(n, types, num_neigh, neigh_types, r)
        ev.compute_A0(n, types, num_neigh, neigh_types)
        ev.compute_A0_scaled(n, types, num_neigh, neigh_types, r)
        ev.compute_M0(n, types)
        ev.compute_H1(n)
        if offset:
            h1 = np.array(ev.H1, dtype=np.float64).reshape(n, -1) + self._h1_offset[types]
            ev.H1 = h1.reshape(-1)

    def _run_layers(self, ev, nl, types, num_neigh, neigh_index, neigh_types, xyz, r) -> None:
        n = len(types)
        ev.node_energies = np.zeros(nl)
        ev.node_forces = np.zeros(len(xyz))
        self._first_layer(ev, n, types, num_neigh, neigh_types, xyz, r)
        ev.compute_R1(nl, types, num_neigh, neigh_types, r)
        ev.compute_Phi1(nl, num_neigh, neigh_index)
        ev.compute_A1(nl)
        ev.compute_A1_scaled(nl, types, num_neigh, neigh_types, r)
        ev.compute_M1(nl, types)
        ev.compute_H2(nl, types)
        ev.compute_readouts(nl, types)
        ev.reverse_H2(nl, types, False)
        ev.reverse_M1(nl, types)
        ev.reverse_A1_scaled(nl, types, num_neigh, neigh_types, xyz, r)
        ev.reverse_A1(nl)
        ev.reverse_Phi1(nl, num_neigh, neigh_index, xyz, r, False, False)
        ev.reverse_H1(n)
        ev.reverse_M0(n, types)
        ev.reverse_A0_scaled(n, types, num_neigh, neigh_types, xyz, r)
        ev.reverse_A0(n, types, num_neigh, neigh_types, xyz, r)

    def _self_check(self) -> float:
        """Largest |energy| and |edge force| difference of both evaluators on a small random cluster."""
        rng = np.random.default_rng(0)
        n = 12
        pos = rng.uniform(0.0, 1.6 * self.r_cut, (n, 3))
        types = (np.arange(n) % len(self.atomic_numbers)).astype(np.int32)
        d = pos[None, :, :] - pos[:, None, :]
        dist = np.linalg.norm(d, axis=2)
        i, j = np.nonzero((dist < self.r_cut) & (dist > 0))
        g = (
            types,
            np.bincount(i, minlength=n).astype(np.int32),
            j.astype(np.int32),
            types[j],
            np.ascontiguousarray(d[i, j]).reshape(-1),
            np.ascontiguousarray(dist[i, j]),
        )
        self.whole.compute_node_energies_forces(n, *g)
        e0 = np.array(self.whole.node_energies)[:n]
        f0 = np.array(self.whole.node_forces)[: 3 * len(i)]
        self._run_layers(self._layered, n, *g)
        e1 = np.array(self._layered.node_energies)[:n]
        f1 = np.array(self._layered.node_forces)[: 3 * len(i)]
        return float(max(np.abs(e0 - e1).max(), np.abs(f0 - f1).max()))
