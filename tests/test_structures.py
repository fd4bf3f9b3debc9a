"""Structures: monolayers for every 2H MX2, supercells, defects, strain, rattling, I/O."""

from __future__ import annotations

import numpy as np
import pytest
from ase.io import read

from mlff2d.errors import StructureError
from mlff2d.structures import (
    MATERIALS,
    check_2d,
    make_defect,
    monolayer,
    rattle,
    read_structure,
    species_order,
    strain,
    supercell,
    write_structure,
)


@pytest.mark.parametrize("formula", sorted(MATERIALS))
def test_monolayer_geometry(formula):
    atoms = monolayer(formula)
    mat = MATERIALS[formula]
    assert atoms.get_chemical_symbols() == [mat.metal, mat.chalcogen, mat.chalcogen]
    assert atoms.cell.cellpar()[:2] == pytest.approx([mat.a, mat.a])
    assert atoms.cell.cellpar()[5] == pytest.approx(120.0)
    z = atoms.positions[:, 2]
    assert z[1] - z[2] == pytest.approx(mat.thickness)
    # trigonal prismatic: both chalcogens sit on the same in-plane site
    assert np.allclose(atoms.positions[1, :2], atoms.positions[2, :2])
    d = atoms.get_distance(0, 1, mic=True)
    assert 2.3 < d < 2.8
    check_2d(atoms)


def test_wse2_reference_values():
    atoms = monolayer("WSe2")
    # shared/reference/wse2.md: PBE a ≈ 3.32 Å, W–Se ≈ 2.55 Å, Se–Se ≈ 3.36 Å
    assert atoms.cell.cellpar()[0] == pytest.approx(3.32, abs=0.01)
    assert atoms.get_distance(0, 1, mic=True) == pytest.approx(2.55, abs=0.02)


def test_supercell_and_v_se_12x12(tmp_path):
    cell = make_defect(supercell(monolayer("WSe2"), 12, 12), "V_Se")
    assert len(cell) == 431
    assert cell.info["config_type"] == "V_Se"
    centre = cell.info["defect_center"]
    assert centre.shape == (3,)
    # the removed site was a top-layer Se: above the W plane, no atom left there
    zw = cell.positions[np.array(cell.get_chemical_symbols()) == "W", 2].mean()
    assert centre[2] > zw
    dmin = np.linalg.norm(cell.positions - centre, axis=1).min()
    assert dmin > 2.0
    path = write_structure(cell, tmp_path / "cell.extxyz")
    back = read(path)
    assert np.allclose(back.info["defect_center"], centre)


@pytest.mark.parametrize(
    ("name", "n_atoms", "formula"),
    [
        ("V_Se", 26, "Se17W9"),
        ("V_Se2", 25, "Se16W9"),
        ("V_W", 26, "Se18W8"),
        ("Se_W", 27, "Se19W8"),
        ("W_Se", 27, "Se17W10"),
        ("Mo_W", 27, "MoSe18W8"),
        ("S_Se", 27, "SSe17W9"),
    ],
)
def test_defect_registry(name, n_atoms, formula):
    cell = make_defect(supercell(monolayer("WSe2"), 3, 3), name)
    assert len(cell) == n_atoms
    assert cell.get_chemical_formula() == formula
    assert cell.info["defect"] == name


def test_v_se2_removes_one_column():
    host = supercell(monolayer("WSe2"), 4, 4)
    cell = make_defect(host, "V_Se2")
    c = cell.info["defect_center"]
    zw = host.positions[0, 2]
    assert c[2] == pytest.approx(zw, abs=1e-8)  # middle of the column = metal plane


def test_defect_at_chosen_site():
    host = supercell(monolayer("WSe2"), 3, 3)
    cell = make_defect(host, "V_W", site=3)
    assert np.allclose(cell.info["defect_center"], host.positions[3])


def test_other_materials_work_unchanged():
    cell = make_defect(supercell(monolayer("MoS2"), 4, 4), "V_S")
    assert len(cell) == 47
    assert species_order(cell) == ["Mo", "S"]
    assert species_order(make_defect(supercell(monolayer("WSe2"), 3, 3), "Mo_W")) == ["W", "Se", "Mo"]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: monolayer("WQq2"), "unknown element"),
        (lambda: monolayer("WXe2"), "unsupported chalcogen"),
        (lambda: monolayer("CrSe2"), "unsupported metal"),
        (lambda: monolayer("WSe2", vacuum=3.0), "vacuum"),
        (lambda: supercell(monolayer("WSe2"), 0, 2), "supercell size 0"),
        (lambda: make_defect(monolayer("WSe2"), "V_Xe"), "Xe is not in the host"),
        (lambda: make_defect(monolayer("WSe2"), "Frenkel"), "unknown defect"),
        (lambda: make_defect(supercell(monolayer("WSe2"), 2, 2), "V_Se", site=99), "out of range"),
        (lambda: make_defect(supercell(monolayer("WSe2"), 2, 2), "V_Se", site=0), "not a top-layer Se"),
        (lambda: strain(monolayer("WSe2"), 0.5), "out of range"),
        (lambda: rattle(monolayer("WSe2"), 2.0), "out of range"),
    ],
)
def test_bad_input_is_one_line_error(call, match):
    with pytest.raises(StructureError, match=match) as err:
        call()
    assert "\n" not in str(err.value)


def test_no_vacuum_is_rejected():
    bulk = monolayer("WSe2")
    bulk.set_cell(bulk.cell.array * [1, 1, 0.2], scale_atoms=False)
    with pytest.raises(StructureError, match="vacuum"):
        check_2d(bulk)


def test_strain_biaxial_and_uniaxial():
    atoms = monolayer("WSe2")
    bi = strain(atoms, 0.02)
    assert bi.cell.cellpar()[0] == pytest.approx(3.32 * 1.02)
    assert bi.cell[2, 2] == atoms.cell[2, 2]
    uni = strain(atoms, (0.03, 0.0))
    assert uni.cell[0, 0] == pytest.approx(3.32 * 1.03)
    assert uni.cell[1, 1] == pytest.approx(atoms.cell[1, 1])


def test_rattle_is_reproducible():
    atoms = supercell(monolayer("WSe2"), 2, 2)
    a, b = rattle(atoms, 0.05, seed=3), rattle(atoms, 0.05, seed=3)
    assert np.allclose(a.positions, b.positions)
    assert np.std(a.positions - atoms.positions) == pytest.approx(0.05, rel=0.4)


def test_unreadable_file(tmp_path):
    bad = tmp_path / "bad.extxyz"
    bad.write_text("not a structure\n")
    with pytest.raises(StructureError, match="cannot read"):
        read_structure(bad)
    with pytest.raises(StructureError, match="not found"):
        read_structure(tmp_path / "missing.extxyz")
