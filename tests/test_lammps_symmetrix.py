"""pair_style mace on the Symmetrix-XL route against mace-torch's MACECalculator.

A random 2-layer MACE that Symmetrix-XL takes (4 channels, max_ell 3, correlation 3; its
kernels compile in seconds) is exported for LAMMPS with its ``<model>.symmetrix/`` bundle next
to it. ``pair_style mace`` then takes the Symmetrix-XL route by itself, and energies, forces,
virials and per-atom energies must equal the mace-torch reference to 1e-6 on every graph layout:
one rank (whole periodic graph, compiled kernels), domain decomposition on one and two MPI ranks
(local atoms plus halo, layer by layer), and local atoms in chunks under a tiny memory budget.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from test_lammps_plugin import _assert_same, _cell, _lammps, _reference

pytest.importorskip("symmetrix", reason="symmetrix-xl is not installed (pyproject.toml pins it)")
if shutil.which("c++") is None:
    pytest.skip("Symmetrix-XL compiles its kernels with c++, which is not on PATH", allow_module_level=True)

ROUTE = "pair_style mace: Symmetrix-XL route"


@pytest.fixture(scope="module")
def sym_model(tmp_path_factory, mace_plugin):
    """A small 2-layer model: (mace-torch model, LAMMPS export with a prepared bundle, bare copy)."""
    import torch

    from mlff2d.lammps.toymodel import random_mace, save_lammps_model
    from mlff2d.training.symmetrix import prepare_bundle

    root = tmp_path_factory.mktemp("lmp_symmetrix")
    model = random_mace(channels=4, max_ell=3, correlation=3, r_max=4.0, seed=5)
    torch.save(model, root / "small.model")
    prepare_bundle(root / "small.model")
    lammps_model = save_lammps_model(model, root / "small.model-lammps.pt")
    bare = root / "bare"  # the same export without a bundle
    bare.mkdir()
    shutil.copy(root / "small.model", bare / "small.model")
    shutil.copy(lammps_model, bare / "small.model-lammps.pt")
    return model, lammps_model, bare / "small.model-lammps.pt"


@pytest.fixture(scope="module")
def cell_and_reference(sym_model):
    """6x6 WSe2 with a Se vacancy (107 atoms, rattled) and its MACECalculator results."""
    atoms = _cell(6)
    return atoms, _reference(sym_model[0], atoms)


@pytest.mark.parametrize(
    ("opts", "nprocs", "chunks"),
    [("", 1, False), ("domain_decomposition", 1, False), ("memory 0.05", 1, True), ("", 2, False)],
    ids=["1rank-whole-graph", "1rank-domain_decomposition", "1rank-chunks", "2ranks-mpi"],
)
def test_symmetrix_route_matches_mace_calculator(
    sym_model, cell_and_reference, tmp_path, opts, nprocs, chunks
):
    atoms, ref = cell_and_reference
    res, got = _lammps(tmp_path, atoms, sym_model[1], opts, nprocs)
    assert ROUTE in res.output
    n_chunks = int(res.output.split("Symmetrix-XL evaluated ")[1].split()[0])
    assert (n_chunks > 1) == chunks
    assert np.abs(ref["forces"]).max() > 1e-2  # the comparison can fail
    _assert_same(got, ref)


def test_without_bundle_or_with_symmetrix_no_mace_torch_runs(sym_model, cell_and_reference, tmp_path):
    atoms, ref = cell_and_reference
    res, got = _lammps(tmp_path / "bare", atoms, sym_model[2])
    assert "mace-torch route (Symmetrix-XL: no Symmetrix-XL kernels prepared" in res.output
    _assert_same(got, ref)
    res, _ = _lammps(tmp_path / "no", atoms, sym_model[1], "symmetrix no")
    assert "mace-torch route (Symmetrix-XL: symmetrix no)" in res.output


def test_bad_symmetrix_keyword_is_a_lammps_error(sym_model, cell_and_reference, tmp_path: Path):
    from mlff2d.errors import CalculationFailed

    atoms, _ = cell_and_reference
    with pytest.raises(CalculationFailed, match="symmetrix needs auto, yes or no"):
        _lammps(tmp_path, atoms, sym_model[1], "symmetrix maybe")


@pytest.mark.parametrize("nprocs", [1, 2], ids=["1rank", "2ranks-mpi"])
def test_float32_model_runs_float32_kernels(tmp_path_factory, mace_plugin, tmp_path, nprocs):
    """A float32 export with float32 kernels: within float32 round-off of the float64 evaluation."""
    import torch

    from mlff2d.lammps.toymodel import random_mace, save_lammps_model
    from mlff2d.training.symmetrix import prepare_bundle

    root = tmp_path_factory.getbasetemp() / "lmp_symmetrix32"
    if not (root / "small.model-lammps.pt").is_file():
        root.mkdir(exist_ok=True)
        model = random_mace(channels=4, max_ell=3, correlation=3, r_max=4.0, seed=5, dtype="float32")
        torch.save(model, root / "small.model")
        prepare_bundle(root / "small.model", ("float32",))
        save_lammps_model(model, root / "small.model-lammps.pt")
    model = torch.load(root / "small.model", weights_only=False)
    atoms = _cell(6)
    res, got = _lammps(tmp_path, atoms, root / "small.model-lammps.pt", "", nprocs)
    assert ROUTE in res.output
    _assert_same(got, _reference(model.double(), atoms), e_tol=1e-4, f_tol=1e-5, v_tol=1e-4)


def test_route_inside_a_python_process(sym_model, cell_and_reference, tmp_path):
    """lammps.lammps() in this interpreter: the bridge uses it (no second interpreter)."""
    from mlff2d.lammps.run import write_data
    from mlff2d.lammpslib import new_lammps

    atoms, ref = cell_and_reference
    write_data(atoms, tmp_path / "cell.data", ["W", "Se"])
    lmp = new_lammps(["-log", str(tmp_path / "log.lammps")])
    try:
        for line in ("units metal", "atom_style atomic", f"read_data {tmp_path / 'cell.data'}"):
            lmp.command(line)
        lmp.command("pair_style mace")
        lmp.command(f"pair_coeff * * {sym_model[1]} W Se")
        lmp.command("run 0")
        energy = lmp.get_thermo("pe")
    finally:
        lmp.close()
    assert ROUTE in (tmp_path / "log.lammps").read_text()
    assert abs(energy - ref["energy"]) <= 1e-6
