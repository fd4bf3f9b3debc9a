"""``mlff2d learn``: the active-learning loop with the SW teacher as the oracle (issue 16, items 4-5).

The loop starts from a deliberately poor dataset (``training/learn/wse2_sw_start.yaml``: pristine
cells, slightly rattled, no defects, no heat), trains committees of K = 2 tiny MACE models
(``write_tiny_training_config`` with max_ell 3 and 20 epochs: seconds each), explores 4×4
pristine, V_Se and V_W cells by 600 K committee MD and stops when MD of the target cell, 12×12
V_Se at 600 K (the cell of the headline figures), stays under the σ_F threshold. The holdout is
4 SW-labelled SW-MD frames of that 12×12 V_Se cell at 600 K; the test compares the committee
mean's holdout force error at the end with iteration 0's, measured in the same run.
About 2 minutes on 2 cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import REPO, write_tiny_training_config
from mlff2d.cli import main

RECIPE = REPO / "training" / "learn" / "wse2_sw_learn.yaml"


def _recipe(tmp: Path, **changes: object) -> Path:
    """The shipped SW recipe made small (tiny models, K = 2, short MD), with ``changes``."""
    config = write_tiny_training_config(tmp / "tiny.yaml")
    cfg = yaml.safe_load(config.read_text())
    cfg.update(max_num_epochs=20, max_ell=3, batch_size=2)
    config.write_text(yaml.safe_dump(cfg))
    recipe = yaml.safe_load(RECIPE.read_text())
    recipe.update(
        dataset=str(REPO / recipe["dataset"]),
        train_config=str(config),
        committee=2,
        frames_per_iteration=12,
        max_iterations=3,
        candidates={
            "defects": ["pristine", "V_Se", "V_W"],
            "temperatures": [600],
            "strains": [0.0],
            "steps": 60,
            "interval": 10,
        },
        target={"defect": "V_Se", "supercell": [12, 12], "temperature": 600, "steps": 20, "interval": 5},
        holdout={"frames": 4},
    )
    recipe.update(changes)
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def learn_run(tmp_path_factory) -> tuple[Path, Path]:
    """``mlff2d learn`` of the small SW recipe: (recipe, output folder)."""
    tmp = tmp_path_factory.mktemp("learn")
    recipe = _recipe(tmp)
    assert main(["-q", "learn", str(recipe), "-o", str(tmp / "out")]) == 0
    return recipe, tmp / "out"


def test_learn_adds_defect_frames_and_halves_the_holdout_error(learn_run):
    _, out = learn_run
    history = json.loads((out / "learning.json").read_text())
    assert history[0]["train"]["config_types"] == {"pristine": history[0]["train"]["n"]}
    added: dict[str, int] = {}
    for rec in history:
        for k, v in rec["labelled"]["config_types"].items():
            added[k] = added.get(k, 0) + v
    assert added.get("V_Se", 0) + added.get("V_W", 0) > 0, added
    last = history[-1]
    assert sum(last["train"]["config_types"].values()) == history[0]["train"]["n"] + sum(added.values())
    first_err, last_err = history[0]["holdout"]["forces_rmse"], last["holdout"]["forces_rmse"]
    assert last_err <= 0.5 * first_err, [h["holdout"]["forces_rmse"] for h in history]
    # the record of every iteration: σ_F of the chosen frames before, and after under the next committee
    for before, after in zip(history[:-1], history[1:], strict=True):
        assert before["selected"]["count"] == len(before["selected"]["sigma_before"]) > 0
        assert len(before["selected"]["sigma_after"]) == before["selected"]["count"]
        assert min(before["selected"]["sigma_before"]) > 0.15  # the recipe's threshold
        assert after["iteration"] == before["iteration"] + 1
    assert last["stop"] in ("converged", "max_iterations")
    assert (out / "learning_curve.png").stat().st_size > 10_000
    summary = yaml.safe_load((out / "summary.yaml").read_text())
    assert summary["result"]["holdout_forces_rmse"][0] == pytest.approx(first_err)


def test_learn_rerun_reuses_every_step(learn_run):
    """A finished loop is reused; without its summary (a killed run) every step is reused too."""
    recipe, out = learn_run
    steps = sorted(out.glob("iter_*/committee/member_*/summary.yaml")) + sorted(out.glob("iter_*/*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in steps}
    history = (out / "learning.json").read_text()
    assert main(["-q", "learn", str(recipe), "-o", str(out)]) == 0
    (out / "summary.yaml").unlink()
    (out / "learning.json").unlink()
    assert main(["-q", "learn", str(recipe), "-o", str(out)]) == 0
    assert (out / "learning.json").read_text() == history
    changed = [str(p) for p in steps if p.stat().st_mtime_ns != stamps[p] and p.name != "iteration.json"]
    assert not changed


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"thresold": 0.1}, "unknown key 'thresold'"),
        ({"committee": 1}, "committee: 1 is below the minimum 2"),
        ({"candidates": {"defects": ["V_Xx"]}}, "candidates.defects"),
        ({"target": {"temperature": "hot"}}, "target: temperature"),
        ({"train_config": "missing.yaml"}, "train_config: missing.yaml does not exist"),
    ],
)
def test_bad_recipe_is_one_line_exit_2(tmp_path, capsys, change, words):
    recipe = _recipe(tmp_path, **change)
    out = tmp_path / "out"
    assert main(["learn", str(recipe), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert words in err, err
    assert "Traceback" not in err
    assert not out.exists()


def test_selection_is_above_the_threshold_and_diverse():
    """Farthest-point sampling picks one frame per kind of cell before a second of the same kind."""
    from mlff2d.learning.explore import build_cell, select_frames
    from mlff2d.structures import rattle

    def frame(defect: str, sigma: float, seed: int):
        atoms = rattle(build_cell("WSe2", defect, (3, 3)), 0.02, seed=seed)
        atoms.info["sigma_max"] = sigma
        return atoms

    frames = [frame("V_Se", 0.50 + 0.01 * i, i) for i in range(5)]
    frames += [frame("pristine", 0.30, 10), frame("V_W", 0.25, 11), frame("V_W", 0.05, 12)]
    chosen = select_frames(frames, threshold=0.1, n=3)
    assert chosen[0] is frames[4]  # the most uncertain first
    assert {f.info["config_type"] for f in chosen} == {"V_Se", "V_W", "pristine"}  # not 3 × V_Se
    assert all(f.info["sigma_max"] > 0.1 for f in chosen)
    assert len(select_frames(frames, threshold=0.1, n=20)) == 7
    assert select_frames(frames, threshold=1.0, n=3) == []


def test_target_md_in_lammps_with_the_committee_plugin(learn_run, mace_plugin, tmp_path):
    """``target: {engine: lammps}``: the exported committee in ``pair_style mace``.

    The plugin's largest σ_F of the start structure equals the ``CommitteeCalculator``'s; then
    the loop's folder is run again with the target MD in LAMMPS (last test of the module: it
    rewrites the loop's ``learning.json``), reusing iteration 0's committee.
    """
    import numpy as np

    from mlff2d.learning.explore import build_cell, committee_md_lammps
    from mlff2d.training.committee import CommitteeCalculator, CommitteeExportWorkflow
    from mlff2d.training.workflows import ExportSettings

    recipe, out = learn_run
    committee = out / "iter_000" / "committee"
    export = CommitteeExportWorkflow(ExportSettings(committee, symmetrix=False), tmp_path / "export").run()
    cell = build_cell("WSe2", "V_Se", (12, 12))
    steps, sigma = committee_md_lammps(
        cell, export.lammps_models, export.elements, tmp_path / "md", 600.0, 10, 5
    )
    atoms = cell.copy()
    atoms.calc = CommitteeCalculator(committee)
    assert steps == [0, 5, 10]
    assert sigma[0] == pytest.approx(float(np.max(atoms.calc.get_property("forces_std", atoms))), rel=1e-6)
    assert all(np.isfinite(sigma)) and min(sigma) > 0

    spec = yaml.safe_load(recipe.read_text())
    spec["target"]["engine"] = "lammps"
    spec["max_iterations"] = 0
    lammps_recipe = tmp_path / "recipe_lammps.yaml"
    lammps_recipe.write_text(yaml.safe_dump(spec))
    assert main(["-q", "learn", str(lammps_recipe), "-o", str(out)]) == 0
    (rec,) = json.loads((out / "learning.json").read_text())
    assert len(rec["target"]["sigma_per_frame"]) == spec["target"]["steps"] // spec["target"]["interval"]
    assert rec["stop"] in ("converged", "max_iterations")
    assert (out / "iter_000" / "target_lammps" / "log.lammps").is_file()
