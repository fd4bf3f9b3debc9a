"""The end-to-end pipeline on a tiny recipe: runs, is a no-op when re-run, resumes a lost stage."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from mlff2d.cli import main
from mlff2d.errors import ConfigError
from mlff2d.pipeline import load_recipe

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_recipe(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    cfg = yaml.safe_load((REPO / "training" / "wse2_sw_quick.yaml").read_text())
    cfg.update(max_num_epochs=2, swa=False, num_channels=8, max_ell=2, MLP_irreps="8x0e")
    for k in list(cfg):
        if k.startswith("swa_") or k == "start_swa":
            del cfg[k]
    (root / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    (root / "data.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "calculator": "sw",
                "seed": 1,
                "groups": [
                    {"count": 10, "supercells": [[2, 2]], "strain": [-0.02, 0.02], "rattle": [0.02, 0.06]},
                    {"count": 10, "defect": "V_Se", "supercells": [[3, 3]], "rattle": [0.02, 0.06]},
                ],
            }
        )
    )
    recipe = {
        "name": "tiny",
        "dataset": {"recipe": str(root / "data.yaml")},
        "train": {"config": str(root / "tiny.yaml")},
        "phonons": {
            "supercell": [3, 3],
            "defect": "V_Se",
            "defect_supercell": [4, 4],
            "options": ["--unfold-npoints", "5", "--npoints", "11", "--mesh", "8", "--no-relax"],
        },
        "md": {"enabled": False},
    }
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return root / "recipe.yaml"


def test_pipeline_runs_then_is_a_noop_then_resumes(tiny_recipe, tmp_path):
    run = tmp_path / "run"
    assert main(["-q", "run", str(tiny_recipe), "-o", str(run)]) == 0
    for name in ("data", "model", "evaluate", "export", "phonons_reference", "phonons", "validation"):
        assert (run / ".pipeline" / f"{name}.json").is_file(), name
    html = (run / "report.html").read_text()
    for fig in ("phonon_bands_pdos", "local_pdos_overview", "parity"):
        assert fig in html
    assert "student vs reference: RMS" in html
    summary = yaml.safe_load((run / "summary.yaml").read_text())
    assert set(summary["results"]["status"].values()) == {"ran"}

    t0 = time.perf_counter()
    assert main(["-q", "run", str(tiny_recipe), "-o", str(run)]) == 0
    assert time.perf_counter() - t0 < 30
    status = yaml.safe_load((run / "summary.yaml").read_text())["results"]["status"]
    assert set(status.values()) == {"up to date"}

    # a stage killed mid-way leaves no record: it runs again, and only it, resuming from its cache
    (run / ".pipeline" / "phonons.json").unlink()
    forces = sorted((run / "phonons").rglob("forces/*.npy"))
    mtimes = [p.stat().st_mtime for p in forces]
    assert main(["-q", "run", str(tiny_recipe), "-o", str(run)]) == 0
    status = yaml.safe_load((run / "summary.yaml").read_text())["results"]["status"]
    assert status["phonons"] == "ran"
    assert [s for n, s in status.items() if n != "phonons"] == ["up to date"] * (len(status) - 1)
    assert [p.stat().st_mtime for p in forces] == mtimes  # cached displacements were not redone


def test_recipe_errors(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("name: x\ndataset: {recipe: a.yaml}\nphonon: {}\n")
    with pytest.raises(ConfigError, match="unknown key 'phonon'"):
        load_recipe(p)
    p.write_text("name: x\ndataset: {}\n")
    with pytest.raises(ConfigError, match="dataset needs"):
        load_recipe(p)


def test_shipped_recipes_load():
    for path in sorted((REPO / "analysis").glob("*.yaml")):
        assert load_recipe(path).name
