"""Committees: `mlff2d train --committee K`, the committee calculator, σ_F calibration, export.

One tiny committee (K = 3, the tiny config of test_pipeline.py: 2 epochs, 8 channels, max_ell 2,
no SWA) is trained once on a 40-structure SW dataset; the tests read and re-run it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.io import read

from conftest import write_tiny_training_config
from mlff2d.cli import main
from mlff2d.errors import InputError

K = 3


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny mace-torch config and a 40-structure SW dataset (32 train, 4 valid, 4 test)."""
    root = tmp_path_factory.mktemp("committee_inputs")
    write_tiny_training_config(root / "tiny.yaml")
    recipe = {
        "name": "tiny",
        "calculator": "sw",
        "seed": 1,
        "groups": [
            {"count": 20, "supercells": [[2, 2]], "strain": [-0.02, 0.02], "rattle": [0.02, 0.06]},
            {"count": 20, "defect": "V_Se", "supercells": [[3, 3]], "rattle": [0.02, 0.06]},
        ],
    }
    (root / "data.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["-q", "dataset", str(root / "data.yaml"), "-o", str(root / "data")]) == 0
    return root / "tiny.yaml", root / "data"


def _train(tiny, run: Path, *extra: str) -> int:
    config, data = tiny
    return main(
        ["-q", "train", str(config), "--data", str(data), "--committee", str(K), "-o", str(run), *extra]
    )


@pytest.fixture(scope="module")
def committee(tiny, tmp_path_factory) -> Path:
    """The run folder of the tiny committee."""
    run = tmp_path_factory.mktemp("committee") / "run"
    assert _train(tiny, run) == 0
    return run


def _frames(path: Path) -> list:
    return read(path, index=":", format="extxyz")


def test_members_are_bootstrap_runs_with_their_own_seed(tiny, committee):
    from mlff2d.training.committee import BOOTSTRAP_FILE, CommitteeWorkflow
    from mlff2d.training.workflows import TrainWorkflow

    res = CommitteeWorkflow.load(committee)
    assert len(res.models) == K and all(m.is_file() for m in res.models)
    assert res.seeds == [1, 2, 3]  # the tiny config's seed 1, + i
    train = _frames(tiny[1] / "train.extxyz")
    keys = [f.positions.tobytes() for f in train]
    boots = []
    for i in range(K):
        member = TrainWorkflow.load(committee / f"member_{i}")
        assert member.model == res.models[i]
        assert Path(member.metrics["dataset"]["valid"]["path"]) == (tiny[1] / "valid.extxyz").resolve()
        assert Path(member.metrics["dataset"]["test"]["path"]) == (tiny[1] / "test.extxyz").resolve()
        frames = _frames(committee / f"member_{i}" / BOOTSTRAP_FILE)
        assert len(frames) == len(train)
        positions = [f.positions.tobytes() for f in frames]
        assert set(positions) <= set(keys) and len(set(positions)) < len(train)  # with replacement
        source = train[keys.index(positions[0])]
        np.testing.assert_array_equal(frames[0].arrays["REF_forces"], source.arrays["REF_forces"])
        assert frames[0].info["REF_energy"] == source.info["REF_energy"]
        boots.append((committee / f"member_{i}" / BOOTSTRAP_FILE).read_text())
    assert len(set(boots)) == K
    assert res.test is not None and len(res.member_test) == K


def test_members_have_different_weights(committee):
    from mlff2d.training import calculator
    from mlff2d.training.committee import committee_models

    atoms = _frames(committee / "member_0" / "train_bootstrap.extxyz")[-1]
    forces = []
    for m in committee_models(committee):
        atoms.calc = calculator(m)
        forces.append(atoms.get_forces())
    for i in range(1, K):
        assert np.abs(forces[i] - forces[0]).max() > 1e-4


def test_committee_calculator_is_the_member_mean(committee):
    from mlff2d.structures import make_defect, monolayer, supercell
    from mlff2d.structures.perturb import rattle
    from mlff2d.training import calculator
    from mlff2d.training.committee import CommitteeCalculator, committee_models

    atoms = rattle(make_defect(supercell(monolayer("WSe2"), 4, 4), "V_Se"), 0.05, seed=2)
    energies, forces, stresses = [], [], []
    for m in committee_models(committee):
        a = atoms.copy()
        a.calc = calculator(m)
        energies.append(a.get_potential_energy())
        forces.append(a.get_forces())
        stresses.append(a.get_stress())
    energies, forces = np.array(energies), np.array(forces)
    atoms.calc = CommitteeCalculator(committee, keep_members=True)
    assert atoms.get_potential_energy() == pytest.approx(energies.mean(), abs=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), forces.mean(axis=0), rtol=0, atol=1e-10)
    np.testing.assert_allclose(atoms.get_stress(), np.mean(stresses, axis=0), rtol=0, atol=1e-10)
    r = atoms.calc.results
    np.testing.assert_allclose(r["forces_members"], forces, rtol=0, atol=1e-10)
    assert r["energy_std"] == pytest.approx(np.sqrt(np.mean((energies - energies.mean()) ** 2)), abs=1e-10)
    dev = forces - forces.mean(axis=0)
    expected = np.sqrt(np.mean(np.sum(dev**2, axis=2), axis=0))
    assert r["forces_std"].shape == (len(atoms),)
    np.testing.assert_allclose(r["forces_std"], expected, rtol=0, atol=1e-10)
    assert r["forces_std"].min() > 0


def test_committee_evaluation_writes_the_calibration(committee, tiny, tmp_path):
    from mlff2d.training.committee import CommitteeWorkflow

    res = CommitteeWorkflow.load(committee)
    assert res.calibration is not None and res.calibration.is_file()
    assert np.isfinite(res.uncertainty["spearman"])
    out = tmp_path / "eval"
    assert main(["-q", "evaluate", str(committee), str(tiny[1] / "test.extxyz"), "-o", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    u = metrics["uncertainty"]
    assert np.isfinite(u["spearman"]) and -1 <= u["spearman"] <= 1
    assert u["n_atoms"] == metrics["overall"]["n_atoms"] and sum(b["n"] for b in u["bins"]) == u["n_atoms"]
    assert (out / "calibration.png").stat().st_size > 0
    pred = _frames(out / "predictions.extxyz")
    assert pred[0].arrays["MACE_forces_std"].shape == (len(pred[0]),)
    # the committee mean is what was scored: its test errors equal the training's committee evaluation
    assert metrics["overall"]["forces"]["rmse"] == pytest.approx(res.test["forces"]["rmse"], rel=1e-12)


def test_calibration_statistics(tmp_path):
    from mlff2d.training.uncertainty import calibrate, forces_std, plot_calibration, threshold_from_bins

    edges = np.arange(6.0)
    assert threshold_from_bins(edges, np.array([0.01, 0.2, 0.05, 0.2, 0.3]), 0.1) == 3.0
    assert threshold_from_bins(edges, np.array([0.2, 0.2, 0.2, 0.2, 0.3]), 0.1) == 0.0
    assert threshold_from_bins(edges, np.array([0.2, 0.2, 0.2, 0.2, 0.05]), 0.1) is None
    rng = np.random.default_rng(0)
    members = rng.normal(size=(4, 500, 3)) * rng.uniform(0.001, 0.3, size=(1, 500, 1))
    sigma = forces_std(members)
    assert sigma.shape == (500,)
    dev = members[:, 7] - members[:, 7].mean(axis=0)
    assert sigma[7] == pytest.approx(np.sqrt(np.mean(np.sum(dev**2, axis=1))))
    error = sigma * np.abs(rng.normal(1.0, 0.2, size=500))  # errors that follow σ_F
    cal = calibrate(sigma, error, target=0.1)
    assert cal.spearman > 0.8 and len(cal.bin_counts) == 10 and cal.bin_counts.sum() == 500
    assert cal.threshold is not None and 0 < cal.threshold < sigma.max()
    assert np.all(cal.bin_rms_error[cal.bin_edges[:-1] >= cal.threshold] >= 0.1)
    shuffled = calibrate(sigma, rng.permutation(error))
    assert abs(shuffled.spearman) < 0.2
    assert plot_calibration(cal, tmp_path / "c.png").stat().st_size > 0


def test_lost_member_is_retrained_alone(tiny, committee, capsys):
    run = committee  # in place: the members' settings name their bootstrap files by path
    kept = {i: (run / f"member_{i}" / "summary.yaml").read_bytes() for i in (0, 2)}
    (run / "member_1" / "summary.yaml").unlink()
    capsys.readouterr()
    assert _train(tiny, run) == 0
    assert "reused" not in capsys.readouterr().out
    status = yaml.safe_load((run / "summary.yaml").read_text())["results"]["member_status"]
    assert status == ["reused", "ran", "reused"]
    assert all((run / f"member_{i}" / "summary.yaml").read_bytes() == b for i, b in kept.items())
    assert _train(tiny, run) == 0
    assert "finished before, reused" in capsys.readouterr().out


def test_committee_folder_moves_and_loads(committee, tmp_path):
    from mlff2d.training.committee import CommitteeWorkflow

    moved = tmp_path / "moved"
    shutil.copytree(committee, moved)
    res = CommitteeWorkflow.load(moved)
    assert res.models == [moved / f"member_{i}" / res.models[i].name for i in range(K)]
    assert all(m.is_file() for m in res.models) and res.manifest == moved / "committee.json"


def test_committee_errors(tiny, committee, tmp_path, capsys):
    from mlff2d.training.committee import CommitteeWorkflow
    from mlff2d.training.workflows import TrainSettings, TrainWorkflow

    config, data = tiny
    assert (
        main(["-q", "train", str(config), "--data", str(data), "--committee", "0", "-o", str(tmp_path)]) == 2
    )
    assert "--committee" in capsys.readouterr().err
    cfg = yaml.safe_load(config.read_text())
    (tmp_path / "shared.yaml").write_text(yaml.safe_dump({**cfg, "model_dir": str(tmp_path / "models")}))
    shared = ["-q", "train", str(tmp_path / "shared.yaml"), "--data", str(data), "--committee", "2"]
    assert main([*shared, "-o", str(tmp_path / "r")]) == 2
    assert "model_dir" in capsys.readouterr().err
    assert not (tmp_path / "r" / "member_0").exists()
    with pytest.raises(InputError, match="committee"):
        TrainWorkflow(TrainSettings(config, data=data, committee=2), tmp_path / "t").run()
    with pytest.raises(InputError, match="holds no committee"):
        CommitteeWorkflow.load(committee / "member_0")
    with pytest.raises(InputError, match="holds a committee"):
        TrainWorkflow.load(committee)
    assert main(["-q", "evaluate", str(tmp_path), str(data / "test.extxyz"), "-o", str(tmp_path / "e")]) == 2
    assert "holds no committee" in capsys.readouterr().err


@pytest.mark.slow
def test_export_committee(committee, tmp_path):
    from mlff2d.training.committee import EXPORT_CARD, CommitteeExportWorkflow
    from mlff2d.training.export import read_model_card

    out = tmp_path / "export"
    assert main(["-q", "export", str(committee), "-o", str(out)]) == 0
    res = CommitteeExportWorkflow.load(out)
    card = json.loads((out / EXPORT_CARD).read_text())
    assert card["size"] == K == len(res.lammps_models) and card["elements"] == ["W", "Se"]
    assert card["pair_coeff"] == res.pair_coeff == f"pair_coeff * * {' '.join(card['members'])} W Se"
    for i, lmp in enumerate(res.lammps_models):
        assert lmp == out / card["members"][i] and lmp.parent == out / f"member_{i}"
        assert read_model_card(lmp)["source_model"].endswith(f"member_{i}/{lmp.name.split('.')[0]}.model")
