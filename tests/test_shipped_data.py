"""The shipped GPAW-PBE data (`data/wse2_gpaw_pbe/`) is complete and consistent with its recipe.

These read files only (no DFT): every recipe structure has a finished label in the store under the
key of the shipped profile, the splits are the store's labels, and the DFT phonon reference's
Phonopy file reproduces its own Γ-mode table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.io import read

from mlff2d.labeling import LabelStore
from mlff2d.reference.registry import get_labeller
from mlff2d.structures.io import structure_key

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "wse2_gpaw_pbe"


@pytest.fixture(scope="module")
def store_and_hash():
    profile = yaml.safe_load((ROOT / "training" / "dft" / "gpaw_pbe.yaml").read_text())
    return LabelStore(DATA / "labels"), get_labeller("gpaw", profile).settings_hash


def test_every_recipe_structure_is_labelled_with_the_shipped_profile(store_and_hash):
    store, shash = store_and_hash
    frames = read(DATA / "structures.extxyz", index=":", format="extxyz")
    assert len(frames) >= 80
    prov = yaml.safe_load((DATA / "provenance.yaml").read_text())
    assert prov["settings_hash"] == shash
    assert prov["n_labelled"] == len(frames) and prov["n_failed"] == 0 and prov["n_pending"] == 0
    for atoms in frames:
        atoms.info.pop("split", None)
        atoms.info.pop("recipe_hash", None)
        key = structure_key(atoms, shash)
        assert store.status(key) == "done", f"{key} ({atoms.info.get('config_type')}) not labelled"
        lab = store.read(key)
        assert lab.info["settings_hash"] == shash and lab.info["source"] == "gpaw-pbe"
        assert lab.arrays["REF_forces"].shape == (len(atoms), 3)
        assert np.isfinite(lab.info["REF_energy"]) and np.shape(lab.info["REF_stress"]) in [(6,), (3, 3)]
        # the label is of this structure, to the rounding of the key
        assert np.allclose(lab.positions, atoms.positions, atol=1e-6)
        # a smeared-DFT label is the free energy; the σ → 0 value, where kept, is within 5 meV/atom
        if "energy_sigma0" in lab.info:
            assert abs(lab.info["energy_sigma0"] - lab.info["REF_energy"]) / len(lab) < 5e-3


def test_splits_are_the_store_labels_disjoint_and_complete(store_and_hash):
    store, shash = store_and_hash
    seen: dict[str, str] = {}
    for split in ("train", "valid", "test"):
        for atoms in read(DATA / f"{split}.extxyz", index=":", format="extxyz"):
            key = structure_key(atoms, shash)
            assert key not in seen, f"{key} in both {seen.get(key)} and {split}"
            seen[key] = split
            ref = store.read(key)
            assert atoms.info["REF_energy"] == pytest.approx(ref.info["REF_energy"], abs=1e-8)
            assert np.allclose(atoms.arrays["REF_forces"], ref.arrays["REF_forces"], atol=1e-8)
    prov = yaml.safe_load((DATA / "provenance.yaml").read_text())
    assert len(seen) == prov["n_structures"]
    for split, counts in prov["counts"].items():
        assert sum(1 for s in seen.values() if s == split) == sum(counts.values())


def test_dft_phonon_reference_reproduces_its_gamma_table():
    from mlff2d.phonons.compare import load_phonopy

    ph = load_phonopy(DATA / "phonons" / "phonopy_params.yaml")
    ph.run_qpoints([[0.0, 0.0, 0.0]])
    freqs = np.sort(ph.qpoints.frequencies[0])
    table = yaml.safe_load((DATA / "phonons" / "gamma_modes.yaml").read_text())
    shipped = np.sort([m["THz"] for m in table["gamma_modes"]])
    assert np.allclose(freqs, shipped, atol=2e-3)  # THz; the table is rounded to 1e-4
    assert freqs[3:].min() > 4.5  # the lowest optical mode (E″) is ~5 THz, not soft
    assert abs(table["a_angstrom"] - np.linalg.norm(ph.primitive.cell[0])) < 1e-6
