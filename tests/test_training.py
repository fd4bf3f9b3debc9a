"""Training stage: mlff2d train / evaluate / export and the ASE calculator helper.

The quick model is trained once per session (``quick_model`` in conftest.py) with the shipped
``training/wse2_sw_quick.yaml``; everything else here is fast.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.io import read, write

from mlff2d.cli import main

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "training" / "wse2_sw_quick.yaml"
PRODUCTION = REPO / "training" / "wse2_production.yaml"
GPAW = REPO / "training" / "wse2_gpaw.yaml"


def _err(capsys) -> str:
    return capsys.readouterr().err.strip()


def _tiny_config(path: Path, epochs: int, data: Path | None = None, **extra) -> Path:
    """A very small mace-torch config (seconds per epoch) for resume and error tests."""
    cfg = {
        "name": "tiny",
        "model": "MACE",
        "r_max": 4.0,
        "num_channels": 8,
        "max_L": 0,
        "max_ell": 1,
        "correlation": 1,
        "num_interactions": 1,
        "MLP_irreps": "4x0e",
        "radial_MLP": "[8]",
        "batch_size": 4,
        "valid_batch_size": 8,
        "max_num_epochs": epochs,
        "plot": False,
        "skip_evaluate_heads": "Default",
        "seed": 3,
        **extra,
    }
    if data is not None:
        cfg["mlff2d"] = {"data": str(data)}
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def tiny_data(sw_quick_data, tmp_path_factory) -> Path:
    """A 24/6/6-structure subset of the SW quick data (3x3 cells and smaller)."""
    out = tmp_path_factory.mktemp("tiny_data")
    for split, n in (("train", 24), ("valid", 6), ("test", 6)):
        frames = [a for a in read(sw_quick_data / f"{split}.extxyz", ":") if len(a) <= 27][:n]
        write(out / f"{split}.extxyz", frames)
    return out


# --- train -> evaluate -> export with the shipped quick config ------------------------------
def test_quick_model_meets_targets(quick_model):
    """SW quick test split: ≤ 4 meV/atom and ≤ 40 meV/Å for every config_type (issue 18's targets)."""
    metrics = json.loads((quick_model.run / "metrics.json").read_text())
    test = metrics["test"]["overall"]
    assert test["forces"]["rmse"] <= 40.0, test
    assert test["energy"]["rmse"] <= 4.0, test
    for name, errors in metrics["test"]["by_config_type"].items():
        assert errors["energy"]["rmse"] <= 4.0 and errors["forces"]["rmse"] <= 40.0, (name, errors)
    assert metrics["e0s"]["method"] == "zero"
    assert set(metrics["test"]["by_config_type"]) >= {"pristine", "V_Se"}
    summary = yaml.safe_load((quick_model.run / "summary.yaml").read_text())
    assert summary["results"]["test"]["forces"]["rmse"] == test["forces"]["rmse"]
    assert summary["timings_s"]["train"] > 0
    for f in ("metrics.json", "metrics.md", "parity_energy.png", "parity_forces.png", "predictions.extxyz"):
        assert (quick_model.run / "eval_test" / f).stat().st_size > 0


def test_rerun_is_noop(quick_model, capsys):
    t0 = time.perf_counter()
    assert main(["train", str(QUICK), "--data", str(quick_model.data), "-o", str(quick_model.run)]) == 0
    assert time.perf_counter() - t0 < 30
    assert "test: E RMSE" in capsys.readouterr().out


def test_evaluate_command(quick_model, tmp_path, capsys):
    out = tmp_path / "eval"
    assert (
        main(
            [
                "-q",
                "evaluate",
                str(quick_model.model),
                str(quick_model.data / "test.extxyz"),
                "-o",
                str(out),
                "--batch-size",
                "7",
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "| **overall** |" in table and "V_Se" in table
    m = json.loads((out / "metrics.json").read_text())
    ref = json.loads((quick_model.run / "eval_test" / "metrics.json").read_text())
    # batching does not change the numbers (batch size 7 here, 16 in training)
    assert m["overall"]["forces"]["rmse"] == pytest.approx(ref["overall"]["forces"]["rmse"], rel=1e-9)
    assert m["overall"]["energy"]["mae"] == pytest.approx(
        ref["overall"]["energy"]["mae"], rel=1e-9, abs=1e-12
    )
    assert set(m["overall"]["forces"]) >= {"mae", "rmse", "x", "y", "z"}
    assert "stress" in m["overall"]
    assert (out / "summary.yaml").is_file() and (out / "parity_forces.png").is_file()


def test_batched_predictions_match_calculator(quick_model):
    """Batched evaluation gives the ASE calculator's energies and forces structure by structure."""
    from mlff2d.training import calculator
    from mlff2d.training.data import load_model
    from mlff2d.training.evaluate import predict

    frames = read(quick_model.data / "test.extxyz", ":6")
    p = predict(load_model(quick_model.model), frames, batch_size=4, progress=False)
    calc = calculator(quick_model.model)
    start = 0
    for i, a in enumerate(frames):
        b = a.copy()
        b.calc = calc
        assert b.get_potential_energy() == pytest.approx(p.energy_pred[i], abs=1e-9)
        np.testing.assert_allclose(b.get_forces(), p.forces_pred[start : start + len(a)], atol=1e-9)
        np.testing.assert_allclose(b.get_stress(), p.stress_pred[i], atol=1e-10)
        start += len(a)


def _lammps_mace_outputs(lmp_model, atoms, r_max: float):
    """Energy and forces from the exported TorchScript model on a graph built by mace-torch."""
    import torch
    from mace import data as mdata
    from mace.tools import AtomicNumberTable, torch_geometric

    torch.set_default_dtype(torch.float64)
    z_table = AtomicNumberTable([int(z) for z in lmp_model.atomic_numbers])
    config = mdata.config_from_atoms(atoms)
    graph = mdata.AtomicData.from_config(config, z_table=z_table, cutoff=r_max)
    batch = next(iter(torch_geometric.dataloader.DataLoader([graph], batch_size=1)))
    d = {k: v for k, v in batch.to_dict().items() if isinstance(v, torch.Tensor)}
    d["positions"].requires_grad_(True)
    local_or_ghost = torch.ones(len(atoms), dtype=torch.float64)
    out = lmp_model(d, local_or_ghost, compute_virials=True)
    return (
        float(out["total_energy_local"].sum()),
        out["forces"].detach().numpy(),
        out["virials"].detach().numpy(),
    )


def test_exported_model_matches_ase_calculator(quick_model):
    """Done-when: torch.jit.load of the export gives the calculator's energy and forces."""
    import torch

    from mlff2d.structures import make_defect, monolayer, rattle, supercell
    from mlff2d.training import calculator, read_model_card

    atoms = rattle(make_defect(supercell(monolayer("WSe2"), 4), "V_Se"), 0.03, seed=11)
    lmp = torch.jit.load(str(quick_model.lammps_model))
    card = json.loads(quick_model.lammps_model.with_suffix(".json").read_text())
    assert card["elements"] == ["W", "Se"] and card["dtype"] == "float64"
    assert card["num_interactions"] == int(lmp.num_interactions) and card["r_max"] == float(lmp.r_max)
    assert card["dataset_hash"] and card["test_metrics"]["forces"]["rmse"] > 0
    assert read_model_card(quick_model.lammps_model) == card
    e_lmp, f_lmp, virial = _lammps_mace_outputs(lmp, atoms, card["r_max"])
    atoms.calc = calculator(quick_model.model)
    e_ase, f_ase = atoms.get_potential_energy(), atoms.get_forces()
    assert abs(e_lmp - e_ase) < 1e-9 * len(atoms)
    np.testing.assert_allclose(f_lmp, f_ase, atol=1e-10)
    # virial = -stress * volume (ASE sign convention for stress)
    stress = atoms.get_stress(voigt=False)
    np.testing.assert_allclose(virial[0], -stress * atoms.get_volume(), atol=1e-8)


def test_export_float32(quick_model, tmp_path):
    import torch

    assert main(["-q", "export", str(quick_model.model), "-o", str(tmp_path), "--dtype", "float32"]) == 0
    (pt,) = tmp_path.glob("*.model-lammps.pt")
    card = json.loads(pt.with_suffix(".json").read_text())
    assert card["dtype"] == "float32"
    lmp = torch.jit.load(str(pt))
    assert all(p.dtype == torch.float32 for p in lmp.parameters())
    assert (tmp_path / "summary.yaml").is_file()


def test_workflows_from_python(quick_model, tmp_path):
    """Each stage run from Python returns its typed result; files exist; a second run is reused."""
    from mlff2d.training.workflows import (
        EvaluateResult,
        EvaluateSettings,
        EvaluateWorkflow,
        ExportResult,
        ExportSettings,
        ExportWorkflow,
        TrainResult,
        TrainSettings,
        TrainWorkflow,
    )

    train = TrainWorkflow(TrainSettings(QUICK, data=quick_model.data), quick_model.run)
    res = train.run()
    assert isinstance(res, TrainResult) and res.model == quick_model.model
    assert train.status == "reused"
    assert res.test == res.metrics["test"]["overall"] and res.e0s == "zero"
    assert all(p.is_file() for p in res.output_files().values())
    assert TrainWorkflow.load(quick_model.run) == res

    test_file = quick_model.data / "test.extxyz"
    ev = EvaluateWorkflow(EvaluateSettings(quick_model.model, test_file, batch_size=5), tmp_path / "ev")
    eres = ev.run()
    assert isinstance(eres, EvaluateResult) and ev.status == "ran"
    assert set(eres.output_files()) == {
        "metrics_json",
        "metrics_md",
        "predictions",
        "parity_energy",
        "parity_forces",
    }
    assert all(p.is_file() and p.parent == tmp_path / "ev" for p in eres.output_files().values())
    assert eres.forces_rmse == pytest.approx(res.test["forces"]["rmse"], rel=1e-9)
    assert json.loads(eres.metrics_json.read_text()) == eres.metrics
    again = EvaluateWorkflow(EvaluateSettings(quick_model.model, test_file, batch_size=5), tmp_path / "ev")
    assert again.run() == eres and again.status == "reused"
    assert EvaluateWorkflow.load(tmp_path / "ev") == eres

    ex = ExportWorkflow(ExportSettings(quick_model.model, dtype="float32"), tmp_path / "ex")
    xres = ex.run()
    assert isinstance(xres, ExportResult) and xres.lammps_model.is_file() and xres.sidecar.is_file()
    assert xres.elements == ["W", "Se"] and xres.dtype == "float32"
    assert xres.pair_coeff == f"pair_coeff * * {xres.lammps_model.name} W Se"
    card = json.loads(xres.sidecar.read_text())
    assert card["dataset_hash"] == res.dataset_hash and card["r_max"] == xres.r_max


def test_options_come_from_settings(tmp_path, capsys):
    """Command options and defaults are the settings dataclasses'; a bad value exits 2 naming it."""
    import dataclasses

    from mlff2d.training.commands import evaluate, export, train
    from mlff2d.training.workflows import EvaluateSettings, ExportSettings, TrainSettings

    for cmd, cls in ((train, TrainSettings), (evaluate, EvaluateSettings), (export, ExportSettings)):
        defaults = {p.name: p.default for p in cmd.params}
        for f in dataclasses.fields(cls):
            assert f.name in defaults, (cmd.name, f.name)
            if f.default is not dataclasses.MISSING:
                assert defaults[f.name] == f.default, (cmd.name, f.name)
    args = ["evaluate", str(tmp_path / "m.model"), str(tmp_path / "d.extxyz"), "-o", str(tmp_path / "x")]
    assert main([*args, "--batch-size", "0"]) == 2
    err = _err(capsys).splitlines()
    assert err[0].startswith("error: --batch-size: 0 is below the minimum 1"), err
    assert not (tmp_path / "x").exists()


def test_calculator_on_defect_cell(quick_model):
    """The ASE helper: a relaxed-ish V_Se cell has small, finite-difference-consistent forces."""
    from mlff2d.structures import make_defect, monolayer, rattle, supercell
    from mlff2d.training import calculator

    atoms = rattle(make_defect(supercell(monolayer("WSe2"), 3), "V_Se"), 0.02, seed=2)
    atoms.calc = calculator(quick_model.model)
    f = atoms.get_forces()
    i, h = 5, 1e-4
    e = []
    for s in (1, -1):
        b = atoms.copy()
        b.calc = atoms.calc
        b.positions[i, 0] += s * h
        e.append(b.get_potential_energy())
    assert -(e[0] - e[1]) / (2 * h) == pytest.approx(f[i, 0], abs=1e-6)


# --- resume after interruption ------------------------------------------------------------
def test_resume_after_kill(tiny_data, tmp_path):
    """Done-when: kill training mid-way; the same command again continues from the checkpoint."""
    cfg = _tiny_config(tmp_path / "tiny.yaml", epochs=12, data=tiny_data)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "mlff2d.cli", "-q", "train", str(cfg), "-o", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = out / "checkpoints"
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            found = sorted(ckpts.glob("*_epoch-*.pt")) if ckpts.is_dir() else []
            if any(int(p.stem.rsplit("-", 1)[1]) >= 2 for p in found):
                break
            time.sleep(0.2)
        assert proc.poll() is None, "training ended before it could be interrupted"
        time.sleep(0.5)  # let a checkpoint being written finish
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    saved = _checkpoint_epoch(ckpts)
    assert saved >= 2 and not (out / "summary.yaml").exists()
    assert main(["-q", "train", str(cfg), "-o", str(out)]) == 0
    _assert_resumed(out, saved, last_epoch=11)
    assert (out / "summary.yaml").is_file() and (out / "tiny.model").is_file()


def _checkpoint_epoch(ckpts: Path) -> int:
    return max(int(p.stem.rsplit("-", 1)[1]) for p in ckpts.glob("*_epoch-*.pt"))


def _assert_resumed(out: Path, saved: int, last_epoch: int) -> None:
    """The second run loaded the epoch-``saved`` checkpoint: its initial validation loss is the
    loss logged at that epoch by the first run, and it went on from there to ``last_epoch``."""
    (log,) = (out / "logs").glob("*_debug.log")
    *first, second = log.read_text().split("MACE version")
    first_losses = {e: loss for e, loss in _losses("\n".join(first)) if e is not None}
    second_losses = _losses(second)
    assert f"epoch-{saved}.pt" in second.split("Loading checkpoint")[1].splitlines()[0]
    initial = [loss for e, loss in second_losses if e is None]
    assert initial and initial[0] == pytest.approx(first_losses[saved], rel=1e-8)
    epochs = [e for e, _ in second_losses if e is not None]
    assert min(epochs) >= saved and max(epochs) == last_epoch


def _losses(text: str) -> list[tuple[int | None, float]]:
    """(epoch or None for the initial evaluation, validation loss) from a mace-torch log."""
    out = []
    for line in text.splitlines():
        if "INFO: Initial:" in line or "INFO: Epoch " in line:
            epoch = int(line.split("Epoch ")[1].split(":")[0]) if "Epoch " in line else None
            out.append((epoch, float(line.split("loss=")[1].split(",")[0])))
    return out


def test_more_epochs_continues_from_checkpoint(tiny_data, tmp_path):
    """Raising max_num_epochs and re-running continues the same run (no restart from epoch 0)."""
    out = tmp_path / "run"
    cfg = _tiny_config(tmp_path / "tiny.yaml", epochs=3, data=tiny_data)
    assert main(["-q", "train", str(cfg), "-o", str(out)]) == 0
    saved = _checkpoint_epoch(out / "checkpoints")
    cfg = _tiny_config(tmp_path / "tiny.yaml", epochs=5, data=tiny_data)
    assert main(["-q", "train", str(cfg), "-o", str(out)]) == 0
    _assert_resumed(out, saved, last_epoch=4)


def test_truncated_checkpoint_is_set_aside(tiny_data, tmp_path):
    """A kill during mace-torch's checkpoint write leaves a truncated newest file: the next run
    sets it aside (``*.pt.unreadable``) and continues from the newest readable checkpoint."""
    out = tmp_path / "run"
    cfg = _tiny_config(tmp_path / "tiny.yaml", epochs=3, data=tiny_data, keep_checkpoints=True)
    assert main(["-q", "train", str(cfg), "-o", str(out)]) == 0
    newest = max((out / "checkpoints").glob("*_epoch-*.pt"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    assert newest.stem.endswith("epoch-2")
    newest.write_bytes(newest.read_bytes()[:1000])  # what a kill mid-write leaves
    cfg = _tiny_config(tmp_path / "tiny.yaml", epochs=5, data=tiny_data, keep_checkpoints=True)
    assert main(["-q", "train", str(cfg), "-o", str(out)]) == 0
    assert newest.with_name(newest.name + ".unreadable").is_file()
    _assert_resumed(out, 1, last_epoch=4)


def test_changed_settings_refused_moved_run_kept(tiny_data, tmp_path, capsys):
    """A finished run is never continued with other settings (mace-torch would re-save its model
    files with new weights); the same run moved to another folder is still complete."""
    out = tmp_path / "run"
    cfg = _tiny_config(tmp_path / "tiny.yaml", epochs=1, data=tiny_data)
    assert main(["-q", "train", str(cfg), "-o", str(out)]) == 0
    model = out / "tiny.model"
    before = model.read_bytes()
    changed = _tiny_config(tmp_path / "changed.yaml", epochs=1, data=tiny_data, lr=0.005)
    assert main(["train", str(changed), "-o", str(out)]) == 2
    err = _err(capsys)
    assert "started with other settings (lr)" in err and "--force" in err
    assert model.read_bytes() == before
    moved = tmp_path / "moved"
    shutil.copytree(out, moved)
    cfg = _tiny_config(tmp_path / "tiny.yaml", epochs=1, data=tiny_data)
    assert main(["train", str(cfg), "-o", str(moved)]) == 0
    assert (moved / "tiny.model").read_bytes() == before
    assert main(["-q", "train", str(changed), "-o", str(out), "--force"]) == 0
    assert json.loads((out / "mlff2d_train.json").read_text())["settings"]["lr"] == 0.005


# --- configs ---------------------------------------------------------------------------------
@pytest.mark.parametrize("config", [QUICK, PRODUCTION, GPAW], ids=["quick", "production", "gpaw"])
def test_shipped_configs_parse_with_mace(config, tmp_path):
    from mlff2d.training.train import Trainer, parse_mace_args
    from mlff2d.training.workflows import TrainSettings

    settings = TrainSettings(config, train_file=REPO / "tests" / "conftest.py", device="cpu")
    tr = Trainer(settings, tmp_path / "run")
    cfg = dict(tr.mace_cfg.items())
    cfg.update(name=cfg.get("name", "x"), train_file="t.extxyz", work_dir=str(tmp_path))
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(cfg))
    args = parse_mace_args(f, str(config))
    assert args.default_dtype == "float64"


def test_e0s_choice():
    from mlff2d.training.data import DatasetInfo
    from mlff2d.training.train import choose_e0s

    def info(sources, iso=0):
        return DatasetInfo(Path("x"), 3, 9, ["Se", "W"], sources, n_isolated_atoms=iso)

    assert choose_e0s({}, info(["sw-teacher"])) == ("{34: 0.0, 74: 0.0}", "zero")
    assert choose_e0s({}, info(["gpaw-pbe"], iso=2)) == (None, "isolated-atom")
    assert choose_e0s({}, info(["gpaw-pbe"])) == ("average", "least-squares")
    assert choose_e0s({"E0s": "average"}, info(["vasp"])) == ("average", "least-squares")
    assert choose_e0s({"E0s": "{74: -9.1, 34: -3.2}"}, info(["vasp"]))[1] == "fixed"


# --- bad input: one line naming the file or key ------------------------------------------------
def test_unknown_mace_key(tiny_data, tmp_path, capsys):
    cfg = _tiny_config(tmp_path / "bad.yaml", 1, data=tiny_data, max_num_epoch=3)
    assert main(["train", str(cfg), "-o", str(tmp_path / "r")]) == 2
    err = _err(capsys)
    assert "unknown mace-torch option 'max_num_epoch'" in err and "max_num_epochs" in err
    assert len(err.splitlines()) <= 2


def test_bad_mace_value(tiny_data, tmp_path, capsys):
    cfg = _tiny_config(tmp_path / "bad.yaml", 1, data=tiny_data, default_dtype="float16")
    assert main(["train", str(cfg), "-o", str(tmp_path / "r")]) == 2
    err = _err(capsys)
    assert "default_dtype" in err and "float16" in err and len(err.splitlines()) <= 2


def test_unknown_mlff2d_key(tiny_data, tmp_path, capsys):
    cfg = _tiny_config(tmp_path / "bad.yaml", 1)
    text = cfg.read_text() + "mlff2d: {dataa: x}\n"
    cfg.write_text(text)
    assert main(["train", str(cfg), "-o", str(tmp_path / "r")]) == 2
    assert "unknown key 'dataa'" in _err(capsys)


@pytest.mark.parametrize("case", ["missing", "empty", "no_forces", "no_data"])
def test_bad_dataset(case, tiny_data, tmp_path, capsys):
    cfg = _tiny_config(tmp_path / "c.yaml", 1)
    f = tmp_path / "train.extxyz"
    if case == "empty":
        f.write_text("")
    elif case == "no_forces":
        frames = read(tiny_data / "train.extxyz", ":3")
        for a in frames:
            del a.arrays["REF_forces"]
        write(f, frames)
    args = ["train", str(cfg), "-o", str(tmp_path / "r")]
    if case != "no_data":
        args += ["--train-file", str(f)]
    assert main(args) == 2
    err = _err(capsys)
    expected = {
        "missing": "dataset file not found",
        "empty": "dataset file is empty",
        "no_forces": "no 'REF_forces'",
        "no_data": "no training data given",
    }[case]
    assert expected in err and len(err.splitlines()) <= 2
    if case != "no_data":
        assert str(f) in err


def test_not_a_mace_model(tmp_path, tiny_data, capsys):
    import torch

    bogus = [tmp_path / "text.model", tmp_path / "dict.model"]
    bogus[0].write_text("not a model\n")
    torch.save({"a": 1}, bogus[1])
    for b in bogus:
        assert main(["evaluate", str(b), str(tiny_data / "test.extxyz"), "-o", str(tmp_path / "e")]) == 2
        assert f"{b} is not a MACE model" in _err(capsys)
        assert main(["export", str(b), "-o", str(tmp_path / "x")]) == 2
        assert "is not a MACE model" in _err(capsys)
    assert main(["export", str(tmp_path / "nope.model"), "-o", str(tmp_path / "x")]) == 2
    assert "model file not found" in _err(capsys)
    from mlff2d.errors import ModelError
    from mlff2d.training import calculator

    with pytest.raises(ModelError, match="not a MACE model"):
        calculator(bogus[0])


def test_unknown_element_and_head(quick_model, tmp_path, capsys):
    from mlff2d.reference import SWTeacher
    from mlff2d.structures import make_defect, monolayer, supercell

    atoms = make_defect(supercell(monolayer("WSe2"), 3), "Mo_W")
    atoms.calc = SWTeacher()
    atoms.info["REF_energy"] = atoms.get_potential_energy()
    atoms.arrays["REF_forces"] = atoms.get_forces()
    atoms.calc = None
    f = tmp_path / "mo.extxyz"
    write(f, [atoms])
    assert main(["evaluate", str(quick_model.model), str(f), "-o", str(tmp_path / "e")]) == 2
    err = _err(capsys)
    assert "element(s) Mo unknown to model" in err and str(f) in err
    assert main(["export", str(quick_model.model), "-o", str(tmp_path / "x"), "--head", "nohead"]) == 2
    assert "no head 'nohead'" in _err(capsys)
