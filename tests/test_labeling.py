"""Labelling: a killed `mlff2d label` resumes without loss or rework; shards; failures recorded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.calculators.emt import EMT
from ase.io import read, write

from mlff2d.labeling import LabelStore, label_structures
from mlff2d.labeling.dataset import build_dataset
from mlff2d.labeling.label import parse_shard
from mlff2d.reference.registry import Labeller, get_labeller
from mlff2d.structures import make_defect, monolayer, rattle, strain, supercell

BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _cells(n: int, size: int = 3, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    base = supercell(monolayer("WSe2"), size, size)
    return [rattle(strain(base, float(rng.uniform(-0.02, 0.02))), 0.05, seed=i) for i in range(n)]


def _snapshot(store: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in store.glob("*.extxyz")}


@pytest.mark.parametrize("sig", [signal.SIGKILL, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)])
def test_killed_label_run_resumes_without_loss_or_rework(tmp_path, sig):
    """Kill `mlff2d label` after some labels landed; the re-run computes exactly the rest."""
    n = 120
    cells = tmp_path / "cells.extxyz"
    write(cells, _cells(n), format="extxyz")
    store = tmp_path / "store"
    cmd = [str(BIN / "mlff2d"), "label", str(cells), "--calculator", "sw", "--store", str(store)]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    t0 = time.time()
    while len(list(store.glob("*.extxyz"))) < 15:
        assert proc.poll() is None, "label run ended before it could be killed"
        assert time.time() - t0 < 120
        time.sleep(0.02)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert proc.returncode != 0
    before = _snapshot(store)
    assert 15 <= len(before) < n
    # every finished file is a complete label (atomic writes: no partial file under a key)
    for name in before:
        assert len(read(store / name).arrays["REF_forces"]) == 27

    out = subprocess.run(cmd, env=ENV, capture_output=True, text=True, check=True)
    summary = yaml.safe_load((store / "summary.yaml").read_text())["results"]
    assert summary["skipped"] == len(before), out.stdout
    assert summary["computed"] == n - len(before)
    assert summary["computed"] + summary["skipped"] == n and summary["failed"] == 0
    after = _snapshot(store)
    assert len(after) == n
    for name, (mtime, blob) in before.items():  # nothing finished was redone
        assert after[name] == (mtime, blob), name
    # a third run computes nothing
    subprocess.run(cmd, env=ENV, capture_output=True, check=True)
    assert yaml.safe_load((store / "summary.yaml").read_text())["results"]["computed"] == 0
    assert _snapshot(store) == after


def test_shards_partition_the_work(tmp_path):
    """Shards i/N compute disjoint sets whose union is every structure; no shared lock needed."""
    cells = _cells(30, size=2)
    labeller = get_labeller("sw")
    store = LabelStore(tmp_path / "store")
    seen: list[set[str]] = []
    for i in range(3):
        before = set(store.keys())
        rep = label_structures(cells, labeller, store, shard=parse_shard(f"{i}/3"), progress=False)
        new = set(store.keys()) - before
        assert rep.computed == len(new) and rep.other_shard == 30 - len(new)
        assert all(int(k, 16) % 3 == i for k in new)
        seen.append(new)
    assert sum(len(s) for s in seen) == len(set().union(*seen)) == 30
    assert set(store.keys()) == set(rep.keys)


def test_shards_parse_errors():
    assert parse_shard(None) == (0, 1) and parse_shard("2/5") == (2, 5)
    for bad in ("5/5", "a/b", "-1/3", "1/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)


def test_failures_are_recorded_excluded_and_retried(tmp_path):
    """A calculator that fails leaves <key>.failed.json with the reason; it is skipped, then retried."""
    cells = _cells(3, size=2)
    store = LabelStore(tmp_path / "store")
    emt = Labeller(EMT(), "emt", {"potential": "emt"})  # EMT has no W or Se: a real failure
    rep = label_structures(cells, emt, store, progress=False)
    assert rep.failed == 3 and rep.computed == 0 and store.keys() == []
    fails = store.failures()
    assert len(fails) == 3 and all(f["reason"] for f in fails)
    assert any("No EMT-potential" in f["reason"] for f in fails)
    assert all(f["config_type"] == "pristine" for f in fails)
    # re-run: failures are not silently recomputed (nor dropped)
    rep = label_structures(cells, emt, store, progress=False)
    assert rep.skipped == 3 and rep.failed == 3 and rep.computed == 0
    # the collected dataset excludes them and says so
    out = subprocess.run(
        [str(BIN / "mlff2d"), "label", "collect", str(store.root), "-o", str(tmp_path / "all.extxyz")],
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "0 labelled structures; 3 failed" in out.stdout
    # retrying with a working calculator under the same key replaces the failure by a label
    fixed = get_labeller("sw")
    fixed.source, fixed.settings = emt.source, emt.settings
    rep = label_structures(cells, fixed, store, retry_failed=True, progress=False)
    assert rep.computed == 3 and store.failures() == [] and len(store.keys()) == 3


def test_label_file_content(tmp_path):
    """A label carries REF_* keys, the settings hash, the source and the structure's info."""
    atoms = make_defect(supercell(monolayer("WSe2"), 3, 3), "V_Se")
    store = LabelStore(tmp_path / "store")
    labeller = get_labeller("sw")
    rep = label_structures([atoms], labeller, store, progress=False)
    lab = store.read(rep.keys[0])
    assert lab.info["settings_hash"] == labeller.settings_hash and lab.info["source"] == "sw-teacher"
    assert lab.info["config_type"] == "V_Se"
    np.testing.assert_allclose(lab.info["defect_center"], atoms.info["defect_center"])
    assert lab.arrays["REF_forces"].shape == (26, 3) and np.shape(lab.info["REF_stress"]) == (6,)
    assert json.dumps(labeller.settings)  # settings are plain data


def test_dataset_resumes_from_saved_structures(tmp_path):
    """`mlff2d dataset` keeps its generated structures; --no-label writes splits from the store only."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "t",
                "calculator": "sw",
                "seed": 3,
                "groups": [
                    {"count": 6, "supercells": [[2, 2]], "rattle": [0.01, 0.05]},
                    {"count": 4, "kind": "md", "supercells": [[2, 2]], "interval": 5},
                ],
            }
        )
    )
    out = tmp_path / "ds"
    res = build_dataset(recipe, out, progress=False, label=False)
    assert res["n_pending"] == 10 and res["n_labelled"] == 0
    saved = (out / "structures.extxyz").read_bytes()
    res = build_dataset(recipe, out, progress=False)
    assert res["computed_now"] == 10 and res["n_labelled"] == 10
    res = build_dataset(recipe, out, progress=False)
    assert res["computed_now"] == 0 and res["n_labelled"] == 10
    assert (out / "structures.extxyz").read_bytes() == saved


def _recipe(path: Path, groups: list[dict]) -> Path:
    path.write_text(yaml.safe_dump({"name": "t", "calculator": "sw", "seed": 1, "groups": groups}))
    return path


def test_dataset_command_reused_then_store_resumes(tmp_path, capsys):
    """`mlff2d dataset` twice: the second is reused; a grown recipe labels only the new structures."""
    from mlff2d.cli import main
    from mlff2d.labeling.workflow import DatasetResult, DatasetSettings, DatasetWorkflow

    group = {"count": 3, "supercells": [[2, 2]], "rattle": [0.01, 0.05]}
    recipe = _recipe(tmp_path / "r.yaml", [group])
    out = tmp_path / "ds"
    assert main(["-q", "dataset", str(recipe), "-o", str(out)]) == 0
    assert "3 labels computed now" in capsys.readouterr().out
    assert main(["-q", "dataset", str(recipe), "-o", str(out)]) == 0
    assert "reused" in capsys.readouterr().out
    wf = DatasetWorkflow(DatasetSettings(recipe), out)
    res = wf.run()
    assert wf.status == "reused" and isinstance(res, DatasetResult)
    assert res.n_labelled == 3 and sum(sum(c.values()) for c in res.counts.values()) == 3
    assert all(p.is_file() for p in (res.train, res.valid, res.test, res.provenance, res.structures))
    assert DatasetWorkflow.load(out) == res
    # a grown recipe is not finished: only the new structures are labelled, the store has the rest
    _recipe(recipe, [group, {**group, "count": 2, "defect": "V_Se"}])
    wf = DatasetWorkflow(DatasetSettings(recipe), out, progress=False)
    res = wf.run()
    assert wf.status == "ran" and res.n_labelled == 5 and res.computed_now == 2


def test_dataset_options_come_from_settings(tmp_path, capsys):
    import dataclasses

    from mlff2d.cli import main
    from mlff2d.labeling.commands import dataset
    from mlff2d.labeling.workflow import DatasetSettings

    defaults = {p.name: p.default for p in dataset.params}
    for f in dataclasses.fields(DatasetSettings):
        if f.default is not dataclasses.MISSING:
            assert defaults[f.name] == f.default, f.name
    assert main(["dataset", str(tmp_path / "missing.yaml"), "-o", str(tmp_path / "o")]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_group_weight_is_the_loss_weight_of_its_structures(tmp_path):
    """A group's ``weight`` becomes each of its structures' ``config_weight`` in the split files,
    which mace-torch reads as the structure's loss weight; changing it relabels nothing."""
    from ase.io import read
    from mace.data.utils import config_from_atoms

    plain = {"count": 3, "supercells": [[2, 2]], "rattle": [0.01, 0.05]}
    recipe = tmp_path / "r.yaml"
    spec = {"name": "t", "calculator": "sw", "seed": 1, "split": {"train": 1.0, "valid": 0.0, "test": 0.0}}
    recipe.write_text(yaml.safe_dump({**spec, "groups": [plain, {**plain, "defect": "V_Se", "weight": 4.0}]}))
    out = tmp_path / "ds"
    assert build_dataset(recipe, out, progress=False)["computed_now"] == 6
    frames = read(out / "train.extxyz", ":")
    weights = sorted(config_from_atoms(a).weight for a in frames)
    assert weights == [1.0] * 3 + [4.0] * 3
    assert all((a.info.get("config_weight") == 4.0) == (a.info["config_type"] == "V_Se") for a in frames)
    recipe.write_text(yaml.safe_dump({**spec, "groups": [plain, {**plain, "defect": "V_Se", "weight": 2.0}]}))
    res = build_dataset(recipe, out, progress=False)
    assert res["computed_now"] == 0
    frames = read(out / "train.extxyz", ":")
    assert sorted(a.info.get("config_weight", 1.0) for a in frames) == [1.0] * 3 + [2.0] * 3
