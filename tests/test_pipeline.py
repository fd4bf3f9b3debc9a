"""The end-to-end pipeline on a tiny recipe: runs, is a no-op when re-run, resumes a lost stage."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from conftest import write_tiny_training_config
from mlff2d.cli import main
from mlff2d.errors import ConfigError
from mlff2d.pipeline import load_recipe

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_recipe(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    write_tiny_training_config(root / "tiny.yaml")
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
            "unfold_npoints": 5,
            "npoints": 11,
            "mesh": 8,
            "relax": False,
        },
        "skip": ["md", "vdos", "dispersion"],
    }
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return root / "recipe.yaml"


def _status(run: Path) -> dict[str, str]:
    return yaml.safe_load((run / "summary.yaml").read_text())["results"]["status"]


@pytest.fixture(scope="module")
def tiny_run(tiny_recipe, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("tiny_run") / "run"
    assert main(["-q", "run", str(tiny_recipe), "-o", str(run)]) == 0
    return run


def test_pipeline_runs_then_is_a_noop_then_resumes(tiny_recipe, tiny_run):
    run = tiny_run
    assert list(_status(run)) == [
        "data",
        "model",
        "evaluate",
        "export",
        "phonons_reference",
        "phonons",
        "validation",
    ]
    assert set(_status(run).values()) == {"ran"}
    html = (run / "report" / "report.html").read_text()
    for fig in ("phonon_bands_pdos", "local_pdos_overview", "parity"):
        assert fig in html
    assert "student vs reference: RMS" in html
    # every stage's command is in the report and reproduces it
    stages = yaml.safe_load((run / "summary.yaml").read_text())["stages"]
    assert stages["phonons"]["command"].startswith("mlff2d phonons WSe2 --calculator mace --model ")
    assert stages["phonons"]["command"] in html

    t0 = time.perf_counter()
    assert main(["-q", "run", str(tiny_recipe), "-o", str(run)]) == 0
    assert time.perf_counter() - t0 < 30
    assert set(_status(run).values()) == {"reused"}

    # a stage killed mid-way has no summary: it runs again, and only it, resuming from its cache
    (run / "phonons" / "summary.yaml").unlink()
    forces = sorted((run / "phonons").rglob("forces/*.npy"))
    assert forces
    mtimes = [p.stat().st_mtime for p in forces]
    assert main(["-q", "run", str(tiny_recipe), "-o", str(run)]) == 0
    status = _status(run)
    assert status["phonons"] == "ran"
    assert [s for n, s in status.items() if n != "phonons"] == ["reused"] * (len(status) - 1)
    assert [p.stat().st_mtime for p in forces] == mtimes  # cached displacements were not redone


def test_stage_results_are_typed(tiny_recipe, tiny_run):
    from mlff2d.pipeline import Pipeline
    from mlff2d.workflow import StageResult

    pipe = Pipeline(tiny_recipe, tiny_run)
    pipe.run()
    by_name = {s.name: s for s in pipe.stages}
    for s in pipe.stages:
        assert type(s.result) is s.workflow.Result, s.name
        assert isinstance(s.result, StageResult)
        assert s.workflow.status == "reused"
        assert all(p.exists() for p in s.result.output_files().values()), s.name
    assert by_name["model"].result.model.is_file()
    assert by_name["export"].result.lammps_model.name.endswith(".model-lammps.pt")
    assert by_name["phonons"].result.defect.dos.is_file()
    assert isinstance(by_name["validation"].result.rms_thz, float)


def test_input_error_inside_a_stage_exits_2_with_its_message(tiny_recipe, tiny_run, tmp_path, capsys):
    """A defect that WSe2 cannot have is found by the phonons stage, after the finished stages."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    recipe = yaml.safe_load(tiny_recipe.read_text())
    recipe["phonons"]["defect"] = "V_Te"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(recipe))
    capsys.readouterr()
    assert main(["-q", "run", str(bad), "-o", str(run)]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "V_Te" in lines[0], err
    assert "Traceback" not in err


def test_recipe_errors(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("name: x\ndataset: {recipe: a.yaml}\nphonon: {}\n")
    with pytest.raises(ConfigError, match="unknown key 'phonon'"):
        load_recipe(p)
    p.write_text("name: x\ndataset: {}\n")
    with pytest.raises(ConfigError, match="dataset needs"):
        load_recipe(p)
    # values are checked too, naming the section and key, before anything runs
    p.write_text("name: x\ndataset: {recipe: a.yaml}\ntrain: {config: t.yaml}\nmd: {temperature: 300K}\n")
    with pytest.raises(ConfigError, match="md: temperature: '300K' is not a number"):
        load_recipe(p)
    p.write_text("name: x\ndataset: {recipe: a.yaml}\ntrain: {config: t.yaml}\nmd: {temperature: -5}\n")
    with pytest.raises(ConfigError, match="md: temperature: -5 K is below the minimum"):
        load_recipe(p)
    # what the pipeline fills from earlier stages is refused
    p.write_text("name: x\ndataset: {recipe: a.yaml}\ntrain: {config: t.yaml}\nexport: {model: m.model}\n")
    with pytest.raises(ConfigError, match="'model' is filled by the pipeline"):
        load_recipe(p)


def test_shipped_recipes_load():
    for path in sorted((REPO / "analysis").glob("*.yaml")):
        assert load_recipe(path).name
