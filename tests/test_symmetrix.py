"""The Symmetrix-XL route: conversion, kernels prepared once, same energies/forces as mace-torch.

The model is the smallest architecture Symmetrix-XL takes (2 layers, max_ell 3, correlation 3)
with 4 channels and random weights: converting it takes ~20 s and compiling its kernels
(``speed`` profile) ~10 s on 2 cores, once per session.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("symmetrix", reason="symmetrix-xl is not installed (pyproject.toml pins it)")
if shutil.which("c++") is None:
    pytest.skip("Symmetrix-XL compiles its kernels with c++, which is not on PATH", allow_module_level=True)


def _cell(n: int = 4, rattle: float = 0.05):
    from mlff2d.structures import make_defect, monolayer, supercell

    atoms = make_defect(supercell(monolayer("WSe2"), n, n), "V_Se")
    atoms.rattle(rattle, seed=1)
    return atoms


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    """A random 2-layer MACE Symmetrix-XL takes, as a ``*.model`` file, with its bundle prepared."""
    import torch

    from mlff2d.lammps.toymodel import random_mace
    from mlff2d.training.symmetrix import choose_route, prepare_bundle

    path = tmp_path_factory.mktemp("symmetrix") / "small.model"
    torch.save(random_mace(channels=4, max_ell=3, correlation=3, r_max=4.0, seed=5), path)
    unprepared = choose_route(path)
    prepare_bundle(path)
    return path, unprepared


def test_symmetrix_equals_mace_calculator(small_model):
    """Energy to 1e-8 relative, forces to 1e-6 eV/Å, stress to 1e-8 eV/Å³ of MACECalculator."""
    from mlff2d.training.calculator import calculator
    from mlff2d.training.symmetrix import ase_calculator

    path, _ = small_model
    calc, choice = ase_calculator(path)
    assert choice.route == "symmetrix"
    assert type(calc).__name__ == "Symmetrix"
    ref = calculator(path)
    for atoms in (_cell(4), _cell(3, 0.1)):
        a, b = atoms.copy(), atoms.copy()
        a.calc, b.calc = calc, ref
        e_ref = b.get_potential_energy()
        assert abs(a.get_potential_energy() - e_ref) <= 1e-8 * abs(e_ref)
        assert np.abs(b.get_forces()).max() > 1e-3  # a real test: the forces are not zero
        np.testing.assert_allclose(a.get_forces(), b.get_forces(), rtol=0, atol=1e-6)
        np.testing.assert_allclose(a.get_stress(), b.get_stress(), rtol=0, atol=1e-8)


def test_route_auto_needs_prepared_kernels_of_this_model(small_model, tmp_path):
    """auto: mace-torch before preparing, Symmetrix-XL after; not for float32 or a changed file."""
    from mlff2d.training.symmetrix import Bundle, choose_route

    path, unprepared = small_model
    assert unprepared.route == "mace-torch"
    assert "no Symmetrix-XL kernels prepared" in unprepared.reason
    assert choose_route(path).route == "symmetrix"
    assert Bundle.of(path).card()["prepared"]["float64"]["compile_s"] >= 0
    assert choose_route(path, "float32").route == "mace-torch"
    assert choose_route(path, route="mace-torch").route == "mace-torch"
    assert choose_route(path, device="cuda").route == "mace-torch"
    # a copy with its bundle but other bytes: the kernels belong to another model
    other = tmp_path / "other.model"
    other.write_bytes(path.read_bytes() + b"\0")
    shutil.copytree(Bundle.of(path).folder, Bundle.of(other).folder)
    choice = choose_route(other)
    assert choice.route == "mace-torch" and "another version" in choice.reason


def test_phonon_engine_auto_takes_symmetrix(small_model):
    """mlff2d phonons' engine choice: symmetrix when prepared, forces equal to the batched engine."""
    from mlff2d.phonons.engines import calculator_and_engine

    path, _ = small_model
    calc, engine = calculator_and_engine("mace", path, "auto", "cpu", None)
    assert engine.name == "symmetrix"
    assert engine.describe()["symmetrix_xl"]
    _, batched = calculator_and_engine("mace", path, "mace-batched", "cpu", 2)
    atoms = _cell(4, 0.0)
    displaced = [atoms.copy() for _ in range(2)]
    displaced[0].positions[3, 0] += 0.01
    displaced[1].positions[7, 2] -= 0.01
    for f_sym, f_ref in zip(engine.compute(displaced, atoms), batched.compute(displaced, atoms), strict=True):
        np.testing.assert_allclose(f_sym, f_ref, rtol=0, atol=1e-6)


def test_one_interaction_model_is_refused_and_recorded(tmp_path):
    """The quick architecture (1 layer, scalar messages): refusal recorded, mace-torch used."""
    import torch

    from mlff2d.errors import ModelError
    from mlff2d.lammps.toymodel import random_mace
    from mlff2d.training.symmetrix import Bundle, choose_route, export_bundle, prepare_bundle

    path = tmp_path / "quick.model"
    torch.save(
        random_mace(channels=8, max_ell=5, correlation=2, num_interactions=1, max_L=0, r_max=4.0), path
    )
    with pytest.raises(ModelError, match="One-interaction MACE models require"):
        prepare_bundle(path)
    assert "One-interaction" in Bundle.of(path).card()["refused"]
    choice = choose_route(path)
    assert choice.route == "mace-torch" and "One-interaction" in choice.reason
    model_json, note = export_bundle(path)
    assert model_json is None and note.startswith("skipped: ")


def test_export_prepares_the_bundle(small_model, tmp_path):
    """mlff2d export writes the LAMMPS model and reports the prepared Symmetrix-XL model."""
    from mlff2d.training.workflows import ExportSettings, ExportWorkflow

    path, _ = small_model
    res = ExportWorkflow(ExportSettings(model=path), tmp_path / "export").run()
    assert res.lammps_model.is_file()
    assert res.symmetrix_model is not None and res.symmetrix_model.is_file()
    assert res.symmetrix.startswith("prepared in ")
    off = ExportWorkflow(ExportSettings(model=path, symmetrix=False), tmp_path / "off").run()
    assert off.symmetrix_model is None and off.symmetrix == "not requested"
