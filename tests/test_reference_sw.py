"""The SW teacher: agreement with a plain LAMMPS run, forces and stress vs finite differences."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from mlff2d.reference import SWTeacher
from mlff2d.reference.sw import sw_pair_commands
from mlff2d.structures import make_defect, monolayer, rattle, strain, supercell

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def cell():
    atoms = make_defect(supercell(monolayer("WSe2"), 3, 3), "V_Se")
    return rattle(strain(atoms, (0.01, -0.01)), 0.04, seed=5)


def test_label_equals_plain_lammps_run(tmp_path):
    """mlff2d structure (LAMMPS data) + mlff2d label == lmp -in with read_data + SW."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    data = tmp_path / "cell.data"
    xyz = tmp_path / "cell.extxyz"
    args = ["WSe2", "--supercell", "4", "4", "--defect", "V_Se", "--rattle", "0.05", "--seed", "2"]
    subprocess.run([BIN / "mlff2d", "structure", *args, "-o", data], check=True, env=env)
    subprocess.run([BIN / "mlff2d", "structure", *args, "-o", xyz], check=True, env=env)
    out = tmp_path / "labelled.extxyz"
    subprocess.run(
        [BIN / "mlff2d", "label", xyz, "--calculator", "sw", "--store", tmp_path / "store", "-o", out],
        check=True,
        env=env,
    )
    lab = read(out)
    pair = "\n".join(sw_pair_commands(["W", "Se"]))
    (tmp_path / "in.sw").write_text(f"""units metal
atom_style atomic
boundary p p p
read_data {data}
{pair}
thermo_style custom step pe
thermo_modify format float %20.12f
dump f all custom 1 forces.dump id fx fy fz
dump_modify f sort id format float %20.12f
run 0
print "PE_TOTAL $(pe:%20.12f)"
""")
    res = subprocess.run(
        [BIN / "lmp", "-in", "in.sw", "-log", "none"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    pe = float(next(line for line in res.stdout.splitlines() if line.startswith("PE_TOTAL")).split()[1])
    f = np.loadtxt(tmp_path / "forces.dump", skiprows=9)[:, 1:]
    # extxyz stores positions with 8 decimals, the data file with 16: agreement to ~1e-7
    assert lab.info["REF_energy"] == pytest.approx(pe, abs=1e-6)
    # the data file is written with the same (lower-triangular) cell, so no rotation is needed
    assert np.abs(lab.arrays["REF_forces"] - f).max() < 1e-6
    assert lab.info["source"] == "sw-teacher"
    assert lab.info["config_type"] == "V_Se"


def test_forces_are_minus_energy_gradient(cell):
    atoms = cell.copy()
    atoms.calc = SWTeacher()
    forces = atoms.get_forces()
    h = 1e-4
    rng = np.random.default_rng(0)
    for i in rng.choice(len(atoms), 4, replace=False):
        for k in range(3):
            e = []
            for s in (1, -1):
                atoms.positions[i, k] += s * h
                e.append(atoms.get_potential_energy())
                atoms.positions[i, k] -= s * h
            assert -(e[0] - e[1]) / (2 * h) == pytest.approx(forces[i, k], abs=2e-6)


def test_stress_is_strain_derivative(cell):
    atoms = cell.copy()
    atoms.calc = SWTeacher()
    stress = atoms.get_stress()  # Voigt xx yy zz yz xz xy
    vol = atoms.get_volume()
    h = 1e-5
    for voigt, (i, j) in [(0, (0, 0)), (1, (1, 1)), (5, (0, 1))]:
        e = []
        for s in (1, -1):
            F = np.eye(3)
            F[i, j] += s * h
            F[j, i] += s * h if i != j else 0.0
            b = cell.copy()
            b.set_cell(cell.cell.array @ F.T, scale_atoms=True)
            b.calc = SWTeacher()
            e.append(b.get_potential_energy())
        deriv = (e[0] - e[1]) / (2 * h) / vol / (2 if i != j else 1)
        assert deriv == pytest.approx(stress[voigt], abs=1e-6)


def test_per_atom_energies_sum_to_total(cell):
    atoms = cell.copy()
    atoms.calc = SWTeacher()
    e = atoms.get_potential_energy()
    assert atoms.calc.results["energies"].sum() == pytest.approx(e, abs=1e-9)


def test_other_material_and_large_cell():
    atoms = supercell(monolayer("MoS2"), 12, 12)
    atoms.calc = SWTeacher()
    f = atoms.get_forces()
    # 2H symmetry: in-plane forces vanish on a perfect lattice, and every atom of one kind
    # feels the same out-of-plane force
    assert np.abs(f[:, :2]).max() < 1e-8
    syms = np.array(atoms.get_chemical_symbols())
    assert np.ptp(f[syms == "Mo", 2]) < 1e-8
    assert atoms.get_potential_energy() < 0
