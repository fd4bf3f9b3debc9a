"""pair_style mace with a committee of models (several files in pair_coeff) against mace-torch.

Three random MACE models of the same architecture (different seeds) are one committee. LAMMPS
evaluates them on one graph; its energy, forces, virial and per-atom energies must be the mean
of the three ``MACECalculator`` results, and the per-atom force spread σ_F it exposes to the
input script (``fix pair ... sigma_f``, dumped) must equal sqrt(mean_k |F_k − F̄|²) computed here,
on 1 rank (periodic images and forced domain decomposition) and on 2 MPI ranks (ghost forces of
each member reverse-communicated). Members that do not fit together are LAMMPS errors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlff2d.lammps.run import read_thermo, run_lammps, write_data
from test_lammps_plugin import _reference, read_outputs

ELEMENTS = ["W", "Se"]
SEEDS = (11, 12, 13)

COMMITTEE_INPUT = """
units           metal
atom_style      atomic
boundary        p p p
processors      ${grid}
read_data       ${data}
PAIR_LINES
fix             sig all pair 1 mace sigma_f 0
compute         pea all pe/atom
compute         vir all pressure NULL virial
compute         mc all pair mace
compute         smax all reduce max f_sig
thermo_style    custom step pe vol c_vir[1] c_vir[2] c_vir[3] c_vir[4] c_vir[5] c_vir[6] &
                c_mc[1] c_mc[2] c_mc[3] c_mc[4] c_mc[5] c_smax
thermo_modify   format float %.16g
dump            d all custom 1 forces.dump id fx fy fz c_pea f_sig
dump_modify     d sort id format float %.16g
run             0
"""


@pytest.fixture(scope="module")
def committee(tmp_path_factory):
    """Three random float64 MACE models (seeds 11-13) and their LAMMPS exports."""
    from mlff2d.lammps.toymodel import random_mace, save_lammps_model

    root = tmp_path_factory.mktemp("committee")
    models = [random_mace(seed=s) for s in SEEDS]
    files = [save_lammps_model(m, root / f"m{s}.model-lammps.pt") for m, s in zip(models, SEEDS, strict=True)]
    return models, files


@pytest.fixture(scope="module")
def cell():
    """4x4 WSe2 with one Se vacancy (47 atoms), rattled by 0.05 Å."""
    from mlff2d.structures import make_defect, monolayer, supercell

    atoms = make_defect(supercell(monolayer("WSe2"), 4, 4), "V_Se")
    atoms.rattle(0.05, seed=3)
    return atoms


@pytest.fixture(scope="module")
def reference(committee, cell):
    """Mean and spread of the three MACECalculator results."""
    members = [_reference(model, cell) for model in committee[0]]
    mean = {k: np.mean([m[k] for m in members], axis=0) for k in members[0]}
    forces = np.array([m["forces"] for m in members])  # (K, N, 3)
    mean["sigma_f"] = np.sqrt(((forces - forces.mean(axis=0)) ** 2).sum(axis=2).mean(axis=0))
    mean["member_energies"] = np.array([m["energy"] for m in members])
    return mean


PAIR = "pair_style mace ${opts}\npair_coeff * * ${models} W Se"
# a committee as a sub-style: LAMMPS sizes the communication buffers from the hybrid style
HYBRID = "pair_style hybrid/overlay zero 6.0 mace\npair_coeff * * zero\npair_coeff * * mace ${models} W Se"


def _lammps(tmp: Path, atoms, files, opts: str = "", nprocs: int = 1, grid: str = "* * 1"):
    tmp.mkdir(parents=True, exist_ok=True)
    write_data(atoms, tmp / "cell.data", ELEMENTS)
    pair = HYBRID if opts == "hybrid" else PAIR
    (tmp / "in.committee").write_text(COMMITTEE_INPUT.replace("PAIR_LINES", pair))
    models = " ".join(str(f) for f in files)
    variables = {"data": "cell.data", "models": models, "opts": opts, "grid": grid}
    res = run_lammps("in.committee", variables, cwd=tmp, nprocs=nprocs, timeout=300)
    run, dump, got = read_outputs(tmp)
    return res, got | {
        "sigma_f": dump[:, 5],
        "sigma_e": run["c_mc[1]"][0],
        "sigma_f_max": run["c_mc[2]"][0],
        "reduce_max": run["c_smax"][0],
        "member_energies": np.array([run[f"c_mc[{i}]"][0] for i in (3, 4, 5)]),
    }


@pytest.mark.parametrize(
    ("opts", "nprocs"),
    [("", 1), ("domain_decomposition", 1), ("", 2), ("hybrid", 2)],
    ids=["1rank-images", "1rank-domain_decomposition", "2ranks-mpi", "2ranks-hybrid-overlay"],
)
def test_committee_matches_mean_of_calculators(
    mace_plugin, committee, cell, reference, tmp_path, opts, nprocs
):
    res, got = _lammps(tmp_path, cell, committee[1], opts, nprocs)
    assert "committee of 3 models on one graph (mean forces)" in res.output
    assert abs(got["energy"] - reference["energy"]) <= 1e-6
    assert np.abs(got["forces"] - reference["forces"]).max() <= 1e-6
    assert np.abs(got["virial"] - reference["virial"]).max() <= 1e-6
    assert np.abs(got["energies"] - reference["energies"]).max() <= 1e-6
    # the members differ: the spread is far from zero, and LAMMPS has it per atom
    assert reference["sigma_f"].min() > 1e-3
    assert np.abs(got["sigma_f"] - reference["sigma_f"]).max() <= 1e-6
    assert np.abs(got["member_energies"] - reference["member_energies"]).max() <= 1e-6
    assert abs(got["sigma_e"] - np.std(reference["member_energies"])) <= 1e-6
    assert got["sigma_f_max"] == pytest.approx(reference["sigma_f"].max(), abs=1e-6)
    assert got["reduce_max"] == pytest.approx(reference["sigma_f"].max(), abs=1e-6)


FIRST_INPUT = """
units           metal
atom_style      atomic
boundary        p p p
read_data       cell.data
pair_style      mace committee first
pair_coeff      * * ${models} W Se
fix             sig all pair 2 mace sigma_f 1
dump            d all custom 2 forces.dump id fx fy fz f_sig
dump_modify     d sort id format float %.16g
thermo          4
run             4
"""


def test_committee_first_drives_with_the_first_member(mace_plugin, committee, cell, reference, tmp_path):
    """`committee first`: forces of member 0, all members only on the steps fix pair samples."""
    from mace.calculators import MACECalculator

    write_data(cell, tmp_path / "cell.data", ELEMENTS)
    (tmp_path / "in.first").write_text(FIRST_INPUT)
    models = " ".join(str(f) for f in committee[1])
    res = run_lammps("in.first", {"models": models}, cwd=tmp_path, timeout=300)
    # steps 0..4 -> 5 force evaluations; members on steps 0, 2, 4 (fix pair every 2)
    assert "committee of 3 (first forces): all members on 3 of 5 evaluations" in res.output
    step0 = np.loadtxt(tmp_path / "forces.dump", skiprows=9, max_rows=len(cell))
    a = cell.copy()
    a.calc = MACECalculator(models=committee[0][0], device="cpu", default_dtype="float64")
    assert np.abs(step0[:, 1:4] - a.get_forces()).max() <= 1e-6
    assert np.abs(step0[:, 4] - reference["sigma_f"]).max() <= 1e-6


# --------------------------------------------------------------------------- errors
ERROR_INPUT = """
units           metal
atom_style      atomic
boundary        p p p
read_data       cell.data
pair_style      mace
pair_coeff      * * ${models} W Se
${extra}
run             0
"""


@pytest.mark.parametrize(
    ("member", "extra", "message"),
    [
        ({"elements": ("W", "S")}, "", "elements S W vs Se W"),
        ({"r_max": 4.0}, "", "r_max 4 A vs 5 A"),
        ({"num_interactions": 1}, "", "1 vs 2 interactions"),
        ({"dtype": "float32"}, "", "dtype float32 vs float64"),
        (None, "fix sig all pair 1 mace sigma_f 0", "sigma_f needs a committee"),
    ],
    ids=["elements", "r_max", "interactions", "dtype", "sigma_f-one-model"],
)
def test_mismatched_members_are_errors(mace_plugin, committee, tmp_path, member, extra, message):
    from mlff2d.lammps.toymodel import random_mace, save_lammps_model
    from mlff2d.structures import monolayer, supercell

    write_data(supercell(monolayer("WSe2"), 2, 2), tmp_path / "cell.data", ELEMENTS)
    files = [committee[1][0]]
    if member is not None:
        files.append(save_lammps_model(random_mace(**member), tmp_path / "odd.model-lammps.pt"))
    (tmp_path / "in.err").write_text(ERROR_INPUT)
    variables = {"models": " ".join(str(f) for f in files), "extra": extra}
    res = run_lammps("in.err", variables, cwd=tmp_path, check=False, timeout=120)
    assert res.returncode > 0, res.output[-2000:]  # an exit status, not a signal
    assert res.error and message in res.output, res.output[-2000:]
    assert "Usage:" in res.output
    assert "Segmentation" not in res.output and "core dumped" not in res.output


def test_md_input_writes_sigma_f(mace_plugin, committee, tmp_path):
    """lammps_inputs/in.wse2_committee: NVE of 4x4 V_Se dumps σ_F per atom, thermo has its max."""
    from mlff2d.lammps.run import inputs_dir

    variables = {
        "inputs": inputs_dir(),
        "models": " ".join(str(f) for f in committee[1]),
        "nx": 4,
        "ny": 4,
        "minimize": 0,
        "equil": 10,
        "steps": 20,
        "sigma_every": 10,
        "thermo": 10,
        "dump_every": 0,
    }
    res = run_lammps(inputs_dir() / "in.wse2_committee", variables, cwd=tmp_path, timeout=300)
    assert "committee of 3 models on one graph (mean forces)" in res.output
    production = read_thermo(tmp_path / "log.lammps")[-1]
    lines = (tmp_path / "sigma_f.lammpstrj").read_text().splitlines()
    frames = [i for i, line in enumerate(lines) if line.startswith("ITEM: TIMESTEP")]
    assert [int(lines[i + 1]) for i in frames] == [0, 10, 20]
    assert lines[frames[0] + 8].split() == ["ITEM:", "ATOMS", "id", "type", "x", "y", "z", "f_sigma"]
    for n, i in enumerate(frames):
        sigma = np.array([float(line.split()[-1]) for line in lines[i + 9 : i + 9 + 47]])
        assert sigma.min() > 0.0
        assert production["c_committee[2]"][n] == pytest.approx(sigma.max(), rel=1e-5)  # dump: %g
    assert (production["c_committee[1]"] > 0).all()
