"""Shared fixtures. Several stages add fixtures here: add yours, never remove others'."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def write_tiny_training_config(path: Path) -> Path:
    """The shipped quick mace-torch config made tiny (2 epochs, 8 channels, max_ell 2, no SWA): seconds.

    The one tiny config of the tests that train (pipeline, committee, faults, reproducibility).
    """
    import yaml

    cfg = yaml.safe_load((REPO / "training" / "wse2_sw_quick.yaml").read_text())
    cfg.update(max_num_epochs=2, swa=False, num_channels=8, max_ell=2, MLP_irreps="8x0e")
    cfg = {k: v for k, v in cfg.items() if not (k.startswith("swa_") or k == "start_swa")}
    path.write_text(yaml.safe_dump(cfg))
    return path


# --- training stage (issue 3) ----------------------------------------------------------------
@dataclass
class QuickModel:
    """The quick MACE model trained once per test session on the SW quick dataset.

    Attributes
    ----------
    model
        mace-torch model file (``*.model``), float64.
    lammps_model
        Its TorchScript export for ``pair_style mace`` (``*.model-lammps.pt``, float64).
    data
        Dataset folder (``train/valid/test.extxyz``) it was trained on.
    run
        The training run folder (``metrics.json``, ``summary.yaml``, checkpoints, logs).
    """

    model: Path
    lammps_model: Path
    data: Path
    run: Path


@pytest.fixture(scope="session")
def sw_quick_data(tmp_path_factory) -> Path:
    """The SW quick dataset: ``mlff2d dataset training/datasets/wse2_sw_quick.yaml`` (seconds)."""
    from mlff2d.cli import main

    out = tmp_path_factory.mktemp("sw_quick_data")
    code = main(["-q", "dataset", str(REPO / "training" / "datasets" / "wse2_sw_quick.yaml"), "-o", str(out)])
    assert code == 0, "mlff2d dataset failed"
    return out


@pytest.fixture(scope="session")
def quick_model(tmp_path_factory, sw_quick_data) -> QuickModel:
    """Train the shipped ``training/wse2_sw_quick.yaml`` unchanged on the SW quick data, and export it.

    Takes a few minutes on 2 cores, once per session. The model is accurate enough for the
    phonon tests (SW phonons reproduced to < 0.08 THz RMS). For quick iterations on other
    stages, ``MLFF2D_QUICK_MODEL_RUN=<folder of a finished mlff2d train run>`` reuses that run
    instead of training (the training tests then check that run).
    """
    from mlff2d.cli import main

    root = tmp_path_factory.mktemp("quick_model")
    reuse = os.environ.get("MLFF2D_QUICK_MODEL_RUN")
    if reuse:
        # work on a copy: some training tests run `mlff2d train` again in the run folder
        run = root / "run"
        shutil.copytree(Path(reuse).resolve(), run)
        train_file = json.loads((run / "metrics.json").read_text())["dataset"]["train"]["path"]
        data = Path(train_file).resolve().parent
    else:
        run, data = root / "run", sw_quick_data
        config = str(REPO / "training" / "wse2_sw_quick.yaml")
        code = main(["-q", "train", config, "--data", str(data), "-o", str(run)])
        assert code == 0, "mlff2d train failed"
    model = run / json.loads((run / "metrics.json").read_text())["model"]
    code = main(["-q", "export", str(model), "-o", str(root / "export")])
    assert code == 0, "mlff2d export failed"
    (lmp,) = (root / "export").glob("*.model-lammps.pt")
    return QuickModel(model=model, lammps_model=lmp, data=data, run=run)


# --- LAMMPS coupling (issue 4) -----------------------------------------------------------------
@dataclass
class ToyMace:
    """An untrained, small MACE (W, Se; r_max 5 Å, 2 layers) for engine-agreement tests.

    Attributes
    ----------
    model
        The mace-torch ``ScaleShiftMACE`` (float64), for mace-torch's ``MACECalculator``.
    lammps_model
        Its ``*.model-lammps.pt`` export (float64) for ``pair_style mace``.
    model32, lammps_model32
        The same architecture in float32 (different random weights).
    """

    model: object
    lammps_model: Path
    model32: object
    lammps_model32: Path


@pytest.fixture(scope="session")
def toy_mace(tmp_path_factory) -> ToyMace:
    """Random small MACE models and their LAMMPS exports (seconds, no training)."""
    from mlff2d.lammps.toymodel import random_mace, save_lammps_model

    root = tmp_path_factory.mktemp("toy_mace")
    m64 = random_mace(dtype="float64", seed=1)
    m32 = random_mace(dtype="float32", seed=2)
    return ToyMace(
        model=m64,
        lammps_model=save_lammps_model(m64, root / "toy64.model-lammps.pt"),
        model32=m32,
        lammps_model32=save_lammps_model(m32, root / "toy32.model-lammps.pt"),
    )


@pytest.fixture(scope="session")
def mace_plugin() -> Path:
    """``maceplugin.so``, built with CMake first if missing or older than its sources."""
    from mlff2d.lammps.plugin import build_plugin

    return build_plugin()
