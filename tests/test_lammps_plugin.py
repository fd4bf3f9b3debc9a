"""pair_style mace (maceplugin.so) against mace-torch's ASE MACECalculator on the same model.

The same random MACE model is evaluated by LAMMPS through the plugin (1 rank, 2 MPI ranks with
domain decomposition, forced domain decomposition on 1 rank, no_domain_decomposition) and by
mace-torch's ASE calculator: energies, forces, virials and per-atom energies must agree to
float64 round-off. Errors must be LAMMPS errors (message, non-zero exit), never crashes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlff2d.lammps.run import read_thermo, run_lammps, write_data
from mlff2d.units import LAMMPS_METAL_NKTV2P

ELEMENTS = ["W", "Se"]

COMPARE_INPUT = """
units           metal
atom_style      atomic
boundary        p p p
processors      ${grid}
read_data       ${data}
pair_style      mace ${opts}
pair_coeff      * * ${model} W Se
compute         pea all pe/atom
compute         vir all pressure NULL virial
thermo_style    custom step pe vol c_vir[1] c_vir[2] c_vir[3] c_vir[4] c_vir[5] c_vir[6]
thermo_modify   format float %.16g
dump            d all custom 1 forces.dump id fx fy fz c_pea
dump_modify     d sort id format float %.16g
run             0
"""


def _cell(n: int, seed: int = 1, isolated: bool = False, shift_z: float = 0.0):
    from mlff2d.structures import make_defect, monolayer, supercell

    atoms = make_defect(supercell(monolayer("WSe2"), n, n), "V_Se")
    atoms.rattle(0.05, seed=seed)
    if isolated:  # a W atom in the vacuum, > r_max from the slab and its images
        atoms.append("W")
        atoms.positions[-1] = [1.0, 1.0, 1.0]
    atoms.positions[:, 2] += shift_z
    return atoms


def _reference(model, atoms, dtype: str = "float64") -> dict[str, np.ndarray]:
    from mace.calculators import MACECalculator

    a = atoms.copy()
    a.calc = MACECalculator(models=model, device="cpu", default_dtype=dtype)
    return {
        "energy": a.get_potential_energy(),
        "forces": a.get_forces(),
        "virial": -a.get_stress(voigt=False) * a.get_volume(),
        "energies": a.calc.results["energies"],  # per atom, with E0 (sum = energy)
    }


def _lammps(tmp: Path, atoms, model: Path, opts: str = "", nprocs: int = 1, grid: str = "* * 1"):
    tmp.mkdir(parents=True, exist_ok=True)
    write_data(atoms, tmp / "cell.data", ELEMENTS)
    (tmp / "in.compare").write_text(COMPARE_INPUT)
    res = run_lammps(
        "in.compare",
        {"data": "cell.data", "model": model, "opts": opts, "grid": grid},
        cwd=tmp,
        nprocs=nprocs,
        timeout=300,
    )
    return res, read_outputs(tmp)[2]


def read_outputs(tmp: Path) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]:
    """Thermo of ``run 0``, the ``forces.dump`` columns and what they say in ASE's terms.

    Returns the thermo columns, the dump (id fx fy fz c_pea ...) and energy (eV), forces (eV/Å),
    virial (eV, 3x3, from ``compute pressure NULL virial``) and per-atom energies (eV).
    """
    (run,) = read_thermo(tmp / "log.lammps")
    dump = np.loadtxt(tmp / "forces.dump", skiprows=9)
    p = [run[f"c_vir[{i}]"][0] for i in range(1, 7)]  # xx yy zz xy xz yz (bar)
    v = np.array([[p[0], p[3], p[4]], [p[3], p[1], p[5]], [p[4], p[5], p[2]]])
    return (
        run,
        dump,
        {
            "energy": run["PotEng"][0],
            "forces": dump[:, 1:4],
            "virial": v * run["Volume"][0] / LAMMPS_METAL_NKTV2P,
            "energies": dump[:, 4],
        },
    )


def _assert_same(got, ref, e_tol=1e-6, f_tol=1e-6, v_tol=1e-6):
    assert abs(got["energy"] - ref["energy"]) <= e_tol, (got["energy"], ref["energy"])
    assert np.abs(got["forces"] - ref["forces"]).max() <= f_tol
    assert np.abs(got["virial"] - ref["virial"]).max() <= v_tol, (got["virial"], ref["virial"])
    assert np.abs(got["energies"] - ref["energies"]).max() <= e_tol


@pytest.fixture(scope="module")
def defect_cell():
    """12x12 WSe2 with one Se vacancy (431 atoms), rattled by 0.05 Å."""
    return _cell(12)


@pytest.fixture(scope="module")
def defect_reference(toy_mace, defect_cell):
    return _reference(toy_mace.model, defect_cell)


def test_plugin_loads_automatically(mace_plugin, tmp_path):
    (tmp_path / "in.list").write_text("plugin list\n")
    res = run_lammps("in.list", cwd=tmp_path, log=None)
    assert "pair style plugin mace" in res.output
    # the version string compiled in equals the running LAMMPS (no mismatch notice)
    assert "compiled for LAMMPS version" not in res.output


def test_python_module_sees_pair_mace(mace_plugin):
    from mlff2d.lammpslib import new_lammps

    lmp = new_lammps()
    try:
        assert lmp.has_style("pair", "mace")
    finally:
        lmp.close()


@pytest.mark.parametrize(
    ("opts", "nprocs"),
    [("", 1), ("no_domain_decomposition", 1), ("domain_decomposition", 1), ("", 2)],
    ids=["1rank-auto", "no_domain_decomposition", "1rank-domain_decomposition", "2ranks-mpi"],
)
def test_matches_ase_calculator_12x12_vse(
    mace_plugin, toy_mace, defect_cell, defect_reference, tmp_path, opts, nprocs
):
    res, got = _lammps(tmp_path, defect_cell, toy_mace.lammps_model, opts, nprocs)
    layout = "domain-decomposition" if (nprocs > 1 or opts == "domain_decomposition") else "periodic-image"
    assert f"pair_style mace: {layout}" in res.output
    if nprocs > 1:
        assert "ghost cutoff 12.000 A" in res.output  # 2 interactions x 5 Å + 2 Å skin
    _assert_same(got, defect_reference)


def test_isolated_atom(mace_plugin, toy_mace, tmp_path):
    atoms = _cell(4, isolated=True)
    ref = _reference(toy_mace.model, atoms)
    for nprocs in (1, 2):
        _, got = _lammps(tmp_path / f"np{nprocs}", atoms, toy_mace.lammps_model, nprocs=nprocs)
        _assert_same(got, ref)
        assert np.abs(got["forces"][-1]).max() < 1e-12


def test_empty_subdomain(mace_plugin, toy_mace, tmp_path):
    atoms = _cell(4, shift_z=-6.0)  # slab in the lower half of the box, z split in two
    ref = _reference(toy_mace.model, atoms)
    res, got = _lammps(tmp_path, atoms, toy_mace.lammps_model, nprocs=2, grid="1 1 2")
    assert "1 by 1 by 2 MPI processor grid" in res.output
    _assert_same(got, ref)


def test_float32_model(mace_plugin, toy_mace, tmp_path):
    atoms = _cell(4)
    ref = _reference(toy_mace.model32, atoms, dtype="float32")
    res, got = _lammps(tmp_path, atoms, toy_mace.lammps_model32)
    assert "float32" in res.output
    _assert_same(got, ref, e_tol=2e-3, f_tol=1e-4, v_tol=1e-3)


NVE_INPUT = """
units           metal
atom_style      atomic
boundary        p p f
read_data       cell.data
pair_style      hybrid/overlay sw/mod maxdelcs 0.25 0.35 mace
pair_coeff      * * sw/mod tmd.sw.mod W Se
pair_coeff      * * mace ${model} W Se
velocity        all create 600.0 4928 mom yes rot no dist gaussian
timestep        0.001
fix             nve all nve
thermo_style    custom step temp pe etotal
thermo_modify   format float %.12g
thermo          10
run             ${steps}
"""


def test_nve_energy_conservation(mace_plugin, toy_mace, tmp_path):
    """NVE at ~300 K, dt = 1 fs: SW + the MACE model through the plugin (hybrid/overlay)."""
    from mlff2d.structures import monolayer, supercell

    atoms = supercell(monolayer("WSe2"), 4, 4)
    write_data(atoms, tmp_path / "cell.data", ELEMENTS)
    (tmp_path / "in.nve").write_text(NVE_INPUT)
    steps = 200
    run_lammps("in.nve", {"model": toy_mace.lammps_model, "steps": steps}, cwd=tmp_path, timeout=600)
    (run,) = read_thermo(tmp_path / "log.lammps")
    t_ps, e = run["Step"] * 1e-3, run["TotEng"] / len(atoms)
    drift = np.polyfit(t_ps, e, 1)[0]  # eV/atom/ps
    spread = e.max() - e.min()
    print(
        f"NVE drift {drift * 1e3:.4f} meV/atom/ps, spread {spread * 1e3:.4f} meV/atom, "
        f"T ~ {run['Temp'][1:].mean():.0f} K, {steps} steps of 1 fs, {len(atoms)} atoms"
    )
    # bound: 0.1 meV/atom/ps drift and 0.5 meV/atom fluctuation at dt = 1 fs
    assert abs(drift) < 1e-4
    assert spread < 5e-4


# --------------------------------------------------------------------------- errors
ERROR_INPUT = """
units           metal
atom_style      atomic
boundary        p p p
newton          ${newton}
read_data       cell.data
pair_style      mace ${opts}
pair_coeff      * * ${model} ${elements}
run             0
"""


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ({"model": "missing.model-lammps.pt"}, "cannot open model file"),
        ({"model": "cell.data"}, "is not a TorchScript model"),
        ({"model": "linear.pt"}, "is not a LAMMPS MACE model"),
        ({"elements": "W Mo"}, "element Mo (atom type 2) is unknown to the model"),
        ({"elements": "W Se Se"}, "2 atom types, 3 elements given"),
        ({"elements": "W"}, "2 atom types, 1 elements given"),
        ({"elements": "W Xx"}, "'Xx' (atom type 2) is not an element"),
        ({"newton": "off"}, "requires newton pair on"),
        ({"opts": "bogus"}, "unknown keyword 'bogus'"),
        ({"opts": "no_domain_decomposition", "nprocs": 2}, "runs on one MPI rank only"),
    ],
    ids=[
        "missing",
        "not-torchscript",
        "not-mace",
        "unknown-element",
        "too-many-elements",
        "too-few-elements",
        "not-an-element",
        "newton-off",
        "bad-keyword",
        "no-dd-on-2-ranks",
    ],
)
def test_errors_are_clean(mace_plugin, toy_mace, tmp_path, case, message):
    import torch

    write_data(_cell(2), tmp_path / "cell.data", ELEMENTS)
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(tmp_path / "linear.pt"))
    (tmp_path / "in.err").write_text(ERROR_INPUT)
    case = dict(case)
    nprocs = case.pop("nprocs", 1)
    variables = {"newton": "on", "opts": "", "model": toy_mace.lammps_model, "elements": "W Se"}
    variables.update(case)
    res = run_lammps("in.err", variables, cwd=tmp_path, nprocs=nprocs, check=False, timeout=120)
    assert res.returncode > 0, res.output[-2000:]  # an exit status, not a signal
    assert message in res.output, res.output[-2000:]
    assert "Usage:" in res.output
    assert "Segmentation" not in res.output and "core dumped" not in res.output
