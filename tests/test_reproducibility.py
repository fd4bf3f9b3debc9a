"""Same `mlff2d train` with the same seed: bit-identical model and metrics, whatever the thread count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from conftest import write_tiny_training_config
from mlff2d.cli import main


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """The quick config shrunk to seconds (2 epochs, 8 channels, no SWA) and 20 SW-labelled cells."""
    root = tmp_path_factory.mktemp("repro")
    write_tiny_training_config(root / "tiny.yaml")  # the seed comes from --seed
    recipe = {
        "name": "tiny",
        "calculator": "sw",
        "seed": 1,
        "groups": [
            {"count": 10, "supercells": [[2, 2]], "strain": [-0.02, 0.02], "rattle": [0.02, 0.06]},
            {"count": 10, "defect": "V_Se", "supercells": [[3, 3]], "rattle": [0.02, 0.06]},
        ],
    }
    (root / "data.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["-q", "dataset", str(root / "data.yaml"), "-o", str(root / "data")]) == 0
    return root / "tiny.yaml", root / "data"


def _train(tiny: tuple[Path, Path], out: Path, seed: int, threads: int | None = None) -> dict:
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        args = ["-q", "train", str(tiny[0]), "--data", str(tiny[1]), "--seed", str(seed), "-o", str(out)]
        assert main(args) == 0
    finally:
        torch.set_num_threads(before)
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def seed1(tiny, tmp_path_factory) -> tuple[Path, dict]:
    """A tiny training with seed 1 and the default thread count: its folder and metrics."""
    out = tmp_path_factory.mktemp("seed1") / "run"
    return out, _train(tiny, out, seed=1)


def _weights(model: Path) -> dict:
    return torch.load(model, map_location="cpu", weights_only=False).state_dict()


def _errors(metrics: dict) -> dict:
    """The valid/test errors (overall and per config_type), without the file names."""
    return {s: {k: metrics[s][k] for k in ("overall", "by_config_type")} for s in ("valid", "test")}


def test_same_seed_same_numbers_any_threads(tiny, seed1, tmp_path):
    """Two trainings with seed 1 (default threads, then 1 thread): same bytes, same errors."""
    a_dir, a = seed1
    b = _train(tiny, tmp_path / "b", seed=1, threads=1)
    assert b["torch_threads"] == 1
    assert _errors(a) == _errors(b)
    (model,) = {a["model"], b["model"]}
    wa, wb = _weights(a_dir / model), _weights(tmp_path / "b" / model)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    rec = a["determinism"]
    assert rec["seed"] == 1 and rec["deterministic_algorithms"] is True and rec["cpu_capability"]


def test_other_seed_other_numbers(tiny, seed1, tmp_path):
    a = seed1[1]
    c = _train(tiny, tmp_path / "c", seed=2)
    assert c["determinism"]["seed"] == 2
    assert a["test"]["overall"]["forces"]["rmse"] != c["test"]["overall"]["forces"]["rmse"]
