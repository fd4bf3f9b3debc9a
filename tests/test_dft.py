"""DFT back ends: k-point grids, profiles, a seconds-long GPAW label through `mlff2d label`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.io import write

from mlff2d.errors import InputError
from mlff2d.labeling import LabelStore, label_structures
from mlff2d.reference.dft import kpoint_grid
from mlff2d.reference.registry import get_labeller
from mlff2d.structures import make_defect, monolayer, rattle, strain, supercell

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

#: A GPAW setting that runs in seconds (not for production: 150 eV, 2x2x1 k-points).
TINY = {
    "calculator": "gpaw",
    "source": "gpaw-test",
    "kdensity": 0.8,
    "parameters": {
        "mode": {"name": "pw", "ecut": 150.0},
        "xc": "PBE",
        "occupations": {"name": "fermi-dirac", "width": 0.1},
        "convergence": {"energy": 0.005, "density": 1.0e-3, "eigenstates": 1.0e-6},
    },
}


def _have_gpaw() -> bool:
    try:
        import gpaw  # noqa: F401
    except ImportError:
        return False
    return True


needs_gpaw = pytest.mark.skipif(not _have_gpaw(), reason="GPAW is not installed (pip install -e '.[dft]')")


@pytest.mark.parametrize(
    ("n", "expected"), [(1, (6, 6, 1)), (2, (3, 3, 1)), (3, (2, 2, 1)), (4, (2, 2, 1)), (6, (1, 1, 1))]
)
def test_kpoint_grid_follows_the_cell(n, expected):
    """2.5 points per Å⁻¹ in-plane (|b| = 2π/(a sin 60°) for the primitive cell), one along z."""
    atoms = supercell(monolayer("WSe2", a=3.32), n, n)
    assert kpoint_grid(atoms, 2.5) == expected
    assert kpoint_grid(strain(atoms, 0.03), 2.5) == expected  # ±3 % strain keeps the grid here
    assert kpoint_grid(strain(atoms, -0.03), 2.5) == expected


def test_vacuum_is_measured_from_the_atoms():
    from mlff2d.structures.build import vacuum_of

    atoms = monolayer("WSe2", vacuum=16.0)
    assert vacuum_of(atoms) == pytest.approx(16.0, abs=1e-6)
    assert vacuum_of(rattle(atoms, 0.05, seed=1)) < 16.0
    atoms.positions[:, 2] -= atoms.positions[0, 2]  # the layer straddles z = 0: same vacuum
    assert vacuum_of(atoms) == pytest.approx(16.0, abs=1e-6)


@pytest.mark.parametrize("name", ["gpaw", "vasp", "espresso"])
def test_shipped_profiles_load(name):
    """The profiles of training/dft/ are valid; the settings hash ignores how the code is run."""
    profile = yaml.safe_load(
        (ROOT / "training" / "dft" / f"{ {'espresso': 'qe'}.get(name, name) }_pbe.yaml").read_text()
    )
    if name == "espresso":
        profile.update(command="pw.x", pseudo_dir="/nonexistent/pseudo")
    if name == "gpaw" and not _have_gpaw():
        pytest.skip("GPAW is not installed")
    lab = get_labeller(name, profile)
    assert lab.source.endswith("pbe") and lab.prepare is not None
    moved = {**profile, "command": "srun /elsewhere/code"}
    assert get_labeller(name, moved).settings_hash == lab.settings_hash
    changed = {**profile, "kdensity": 3.0}
    assert get_labeller(name, changed).settings_hash != lab.settings_hash


@needs_gpaw
def test_gpaw_default_is_the_shipped_profile():
    """`--calculator gpaw` without --profile labels with exactly training/dft/gpaw_pbe.yaml."""
    shipped = yaml.safe_load((ROOT / "training" / "dft" / "gpaw_pbe.yaml").read_text())
    assert get_labeller("gpaw", {}).settings_hash == get_labeller("gpaw", shipped).settings_hash


def test_profile_errors():
    with pytest.raises(InputError, match="needs a profile"):
        get_labeller("vasp", {})
    with pytest.raises(InputError, match="unknown key 'ecut'"):
        get_labeller("espresso", {"source": "qe", "ecut": 400})
    with pytest.raises(InputError, match="kpts"):
        get_labeller("espresso", {"source": "qe", "parameters": {"kpts": [2, 2, 1]}})
    with pytest.raises(InputError, match="not 'espresso'"):
        get_labeller("espresso", {"calculator": "vasp", "source": "vasp"})


def test_espresso_input_has_the_structure_kpoints(tmp_path):
    """The QE back end writes a Γ-centred grid from the cell (no pw.x needed to check)."""
    profile = yaml.safe_load((ROOT / "training" / "dft" / "qe_pbe.yaml").read_text())
    with pytest.raises(InputError, match="not configured"):
        get_labeller("espresso", profile)
    lab = get_labeller("espresso", {**profile, "command": "pw.x", "pseudo_dir": str(tmp_path)})
    atoms = make_defect(supercell(monolayer("WSe2"), 3, 3), "V_Se")
    calc = lab.prepare(atoms, tmp_path / "run")
    calc.template.write_input(calc.profile, tmp_path, atoms, dict(calc.parameters), ["energy", "forces"])
    text = (tmp_path / "espresso.pwi").read_text().split("K_POINTS automatic")[1].split()
    assert text[:6] == ["2", "2", "1", "0", "0", "0"]
    assert atoms.info["kpts"] == "2x2x1"


@pytest.mark.gpaw
@needs_gpaw
def test_gpaw_label_through_the_cli(tmp_path):
    """`mlff2d label --calculator gpaw`: a rattled primitive cell in seconds; a re-run is a no-op."""
    atoms = rattle(monolayer("WSe2", vacuum=16.0), 0.04, seed=2)
    cells, profile, store = tmp_path / "c.extxyz", tmp_path / "tiny.yaml", tmp_path / "store"
    write(cells, atoms, format="extxyz")
    profile.write_text(yaml.safe_dump(TINY))
    cmd = [
        str(BIN / "mlff2d"),
        "label",
        str(cells),
        "--calculator",
        "gpaw",
        "--profile",
        str(profile),
        "--store",
        str(store),
        "-o",
        str(tmp_path / "out.extxyz"),
    ]
    out = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 computed" in out.stdout
    lstore = LabelStore(store)
    (key,) = lstore.keys()
    lab = lstore.read(key)
    assert lab.info["source"] == "gpaw-test" and lab.info["kpts"] == "2x2x1"
    assert lab.info["code_version"].startswith("gpaw ")
    assert -19.5 < lab.info["REF_energy"] < -16.5  # eV per WSe2 at this low setting
    f = lab.arrays["REF_forces"]
    assert f.shape == (3, 3) and np.abs(f).max() > 1e-3 and np.abs(f.sum(axis=0)).max() < 0.05
    assert np.shape(lab.info["REF_stress"]) == (6,)
    assert (lstore.workdir(key) / "gpaw.txt").is_file()
    again = subprocess.run(cmd, env=ENV, capture_output=True, text=True, check=True)
    assert "0 computed, 1 already done" in again.stdout


@pytest.mark.gpaw
@needs_gpaw
def test_gpaw_unconverged_scf_is_recorded_as_scf_error(tmp_path):
    """maxiter too small: the failure is kept with its reason (SCFError), never a label."""
    settings = {**TINY, "parameters": {**TINY["parameters"], "maxiter": 2}}
    store = LabelStore(tmp_path / "store")
    atoms = monolayer("WSe2", vacuum=16.0)
    too_thin = monolayer("WSe2", vacuum=16.0)
    too_thin.cell[2, 2] -= 5.5  # 10.5 Å of vacuum
    rep = label_structures([atoms, too_thin], get_labeller("gpaw", settings), store, progress=False)
    assert rep.failed == 2 and store.keys() == []
    reasons = sorted(f["reason"] for f in store.failures())
    assert reasons[0].startswith("SCFError: SCF did not converge")
    assert reasons[1].startswith("StructureError: structure Se2W: cell has only 10.5 Å of vacuum")


@pytest.mark.gpaw
@needs_gpaw
def test_gpaw_ref_energy_is_the_force_consistent_free_energy(tmp_path):
    """Wide smearing (0.5 eV, partly occupied conduction states): REF_energy is E − TS, whose
    finite difference gives REF_forces; the σ → 0 extrapolation is kept as ``energy_sigma0``."""
    params = {
        **TINY["parameters"],
        "occupations": {"name": "fermi-dirac", "width": 0.5},
        "convergence": {"energy": 1.0e-7, "density": 1.0e-6, "eigenstates": 1.0e-9},
    }
    lab = get_labeller("gpaw", {**TINY, "parameters": params})
    atoms = rattle(monolayer("WSe2", vacuum=16.0), 0.04, seed=2)
    h = 0.01  # Å, atom 1 (Se) along x
    energies = {}
    for sign in (-1, 0, 1):
        a = atoms.copy()
        a.positions[1, 0] += sign * h
        store = LabelStore(tmp_path / f"store{sign}")
        label_structures([a], lab, store, progress=False)
        energies[sign] = store.read(store.keys()[0])
    mid = energies[0]
    assert abs(mid.info["energy_sigma0"] - mid.info["REF_energy"]) > 2e-3  # eV: the two differ here
    fd_free = -(energies[1].info["REF_energy"] - energies[-1].info["REF_energy"]) / (2 * h)
    fd_sigma0 = -(energies[1].info["energy_sigma0"] - energies[-1].info["energy_sigma0"]) / (2 * h)
    force = mid.arrays["REF_forces"][1, 0]
    assert abs(fd_free - force) < 2e-3  # eV/Å
    assert abs(fd_free - force) < abs(fd_sigma0 - force)
