"""A catalogue of bad inputs across every command: one answer each, and nothing written or lost.

Each row of :data:`CASES` is ``(id, argv, setup, expected)``: ``mlff2d ARGV`` must exit with code 2,
print exactly one ``error:`` line on stderr (plus at most one ``hint:`` line) containing
``expected``, print no traceback, and leave every folder as it was: the output folder is not
created, and an existing run folder, label store or checkpoint (``setup``) stays byte- and
mtime-identical. Adding a case is one line.

Placeholders in ``argv``: ``{in}`` the folder of prepared input files (good and bad, made once),
``{out}`` a fresh path under the test folder, ``{cfg}`` the quick training config, ``{test}`` a
labelled test split, and, with a ``setup``, ``{store}`` (a label store with one label), ``{ckpt}``
(a training run folder with checkpoints) or ``{folder}`` (a folder holding one file). The commands
run in process (``mlff2d.cli.main``); a few run through the ``mlff2d`` console script too. The
``lmp -in lammps_inputs/in.wse2_defect`` cases check the LAMMPS side: an ``ERROR`` line and a
non-zero exit status, never a crash.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlff2d.cli import main

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CONFIG = f"{REPO}/training/wse2_sw_quick.yaml"
QUICK = f"{REPO}/training/datasets/wse2_sw_quick.yaml"

#: (id, argv, setup, expected substring of the error line)
# fmt: off
CASES: list[tuple[str, str, str | None, str]] = [
    # -- structure
    ("structure-formula", "structure WQq2 -o {out}/x.extxyz", None, "unknown element 'Qq'"),
    ("structure-supercell-0", "structure WSe2 --supercell 0 3 -o {out}/x.extxyz", None, "supercell size 0"),
    ("structure-defect", "structure WSe2 --defect V_Xe -o {out}/x.extxyz", None, "Xe is not in the host"),
    ("structure-vacuum", "structure WSe2 --vacuum 5 -o {out}/x.extxyz", None, "vacuum 5.0 Å is too small"),
    ("structure-nan", "structure {in}/nan.extxyz -o {out}/x.extxyz", None, "positions must be finite"),
    ("structure-overlap", "structure {in}/overlap.extxyz -o {out}/x.extxyz", None, "closer than 0.8 Å"),
    ("structure-garbage", "structure {in}/garbage.extxyz -o {out}/x.extxyz", None, "cannot read structure"),
    ("structure-rattle", "structure WSe2 --rattle -0.1 -o {out}/x.extxyz", None, "rattle amplitude -0.1"),
    ("structure-option-type", "structure WSe2 --supercell two 2 -o {out}/x", None, "not a valid integer"),
    # -- label
    ("label-missing", "label {in}/missing.extxyz --store {out}", None, "not found"),
    ("label-nan", "label {in}/nan.extxyz --store {store}", "store", "positions must be finite"),
    ("label-bulk-sw", "label {in}/bulk.extxyz --calculator sw --store {store}", "store", "of vacuum along z"),
    ("label-overlap", "label {in}/overlap.extxyz --store {out}", None, "atoms 0 (W) and 1 (Se) are 0.100 Å"),
    ("label-no-cell", "label {in}/nocell.extxyz --store {out}", None, "not a periodic 2D cell"),
    ("label-sw-elements", "label {in}/cu.extxyz --store {store}", "store", "Cu unknown to calculator sw"),
    ("label-calculator", "label {in}/wse2.extxyz --calculator dftb", None, "unknown calculator"),
    ("label-shard", "label {in}/wse2.extxyz --shard 5/4 --store {store}", "store", "'5/4' is out of range"),
    ("label-profile", "label {in}/wse2.extxyz --calculator gpaw --profile {in}/no.yaml", None, "no.yaml"),
    ("label-garbage", "label {in}/garbage.extxyz --store {out}", None, "cannot read structure file"),
    ("label-collect", "label collect {in}/nostore -o {out}/x.extxyz", None, "does not exist"),
    # -- dataset
    ("dataset-missing", "dataset {in}/missing.yaml -o {out}", None, "missing.yaml"),
    ("dataset-unknown-key", "dataset {in}/dataset_bad_key.yaml -o {out}", None, "unknown key 'bogus'"),
    ("dataset-calculator", "dataset {in}/dataset_bad_calc.yaml -o {out}", None, "unknown calculator 'dftb'"),
    ("dataset-vacuum", "dataset {in}/dataset_bad_vacuum.yaml -o {out}", None, "too small for a 2D cell"),
    ("dataset-store-file", "dataset {in}/dataset.yaml --store {in}/wse2.extxyz -o {out}", None, "is a file"),
    ("dataset-existing", "dataset {in}/dataset_bad_key.yaml -o {folder}", "folder", "unknown key 'bogus'"),
    # -- train
    ("train-config-missing", "train {in}/missing.yaml --data {in}/data -o {out}", None, "missing.yaml"),
    ("train-data-missing", "train {cfg} --data {in}/nodata -o {out}", None, "nodata"),
    ("train-data-garbage", "train {cfg} --train-file {in}/garbage.extxyz -o {out}", None, "cannot read"),
    ("train-config-key", "train {in}/train_bad_key.yaml --data {in}/data -o {out}", None, "bogus_key"),
    ("train-ckpt-garbage", "train {cfg} --train-file {in}/garbage.extxyz -o {ckpt}", "ckpt", "garbage"),
    ("train-ckpt-missing", "train {cfg} --data {in}/nodata -o {ckpt}", "ckpt", "nodata"),
    # -- learn (more cases: tests/test_learn.py)
    ("learn-missing", "learn {in}/missing.yaml -o {out}", None, "missing.yaml"),
    ("learn-dataset-recipe", "learn {in}/dataset.yaml -o {folder}", "folder", "unknown key"),
    # -- evaluate
    ("evaluate-model-missing", "evaluate {in}/no.model {test} -o {out}", None, "not found"),
    ("evaluate-export", "evaluate {in}/toy.model-lammps.pt {test} -o {out}", None, "TorchScript"),
    ("evaluate-text-model", "evaluate {in}/text.model {test} -o {out}", None, "not a MACE model"),
    ("evaluate-data-garbage", "evaluate {in}/toy.model {in}/garbage.extxyz -o {out}", None, "cannot read"),
    ("evaluate-elements", "evaluate {in}/toy.model {in}/mos2.extxyz -o {out}", None, "knows only W, Se"),
    ("evaluate-no-labels", "evaluate {in}/toy.model {in}/wse2.extxyz -o {out}", None, "no 'REF_forces'"),
    ("evaluate-ckpt", "evaluate {in}/text.model {test} -o {ckpt}", "ckpt", "not a MACE model"),
    # -- export
    ("export-missing", "export {in}/missing.model -o {out}", None, "not found"),
    ("export-text-model", "export {in}/text.model -o {out}", None, "is not a MACE model"),
    ("export-export", "export {in}/toy.model-lammps.pt -o {out}", None, "TorchScript export"),
    ("export-folder", "export {in} -o {out}", None, "holds no committee"),
    # -- md
    ("md-temperature", "md WSe2 -T -5 --pair sw -o {out}", None, "-5 K is below the minimum 0 K"),
    ("md-dt", "md WSe2 --dt 0 --pair sw -o {out}", None, "--dt: 0 fs must be greater than 0"),
    ("md-supercell", "md WSe2 --supercell 0 4 --pair sw -o {out}", None, "--supercell[0]: 0 is below"),
    ("md-no-model", "md WSe2 -o {out}", None, "--pair mace needs --model"),
    ("md-model-missing", "md WSe2 --model {in}/missing.model-lammps.pt -o {out}", None, "not found"),
    ("md-not-torchscript", "md WSe2 --model {in}/fake.model-lammps.pt -o {out}", None, "not a TorchScript"),
    ("md-elements", "md MoS2 --defect none --model {in}/toy.model-lammps.pt -o {out}", None, "Mo, S unknown"),
    ("md-steps", "md WSe2 --pair sw --steps 7 --dump-every 5 -o {out}", None, "multiple of --dump-every"),
    ("md-input", "md WSe2 --pair sw --input {in}/no.in -o {out}", None, "--input"),
    ("md-nan", "md {in}/nan.extxyz --pair sw -o {out}", None, "positions must be finite"),
    ("md-sw-elements", "md {in}/cu.extxyz --pair sw -o {out}", None, "Cu unknown to the SW teacher"),
    ("md-existing", "md WSe2 -T -5 --pair sw -o {folder}", "folder", "below the minimum"),
    ("md-existing-model", "md WSe2 --model {in}/fake.model-lammps.pt -o {folder}", "folder", "TorchScript"),
    # -- phonons
    ("phonons-elements", "phonons MoS2 --model {in}/toy.model -o {out}", None, "MoS2 has element(s) Mo, S"),
    ("phonons-supercell", "phonons WSe2 --model {in}/toy.model --supercell 0 0 -o {out}", None, "below the"),
    ("phonons-overlap", "phonons {in}/overlap.extxyz --calculator sw -o {out}", None, "0.100 Å apart"),
    ("phonons-bulk", "phonons {in}/bulk.extxyz --calculator sw -o {out}", None, "of vacuum along z"),
    ("phonons-model-missing", "phonons WSe2 --model {in}/missing.model -o {out}", None, "not found"),
    ("phonons-model-export", "phonons WSe2 --model {in}/toy.model-lammps.pt -o {out}", None, "TorchScript"),
    ("phonons-displacement", "phonons WSe2 --displacement 0 -o {out}", None, "--displacement: 0 Å must be"),
    ("phonons-defect-name", "phonons WSe2 --defect V_Xx -o {out}", None, "V_Xx"),
    ("phonons-defect-file", "phonons WSe2 --defect-structure {in}/no.extxyz -o {out}", None, "no.extxyz"),
    ("phonons-no-center", "phonons WSe2 --defect-structure {in}/wse2.extxyz -o {out}", None, "defect_center"),
    ("phonons-dopant", "phonons WSe2 --model {in}/toy.model --defect Mo_W -o {out}", None, "Mo unknown"),
    ("phonons-existing", "phonons MoS2 --model {in}/toy.model -o {folder}", "folder", "knows only W, Se"),
    # -- phonons compare
    ("compare-missing", "phonons compare {in}/no_a {in}/no_b -o {out}", None, "A: "),
    ("compare-garbage", "phonons compare {in}/garbage.extxyz {in}/garbage.extxyz -o {out}", None, "garbage"),
    ("compare-folder", "phonons compare {in}/data {in}/data -o {out}", None, "no finished 'phonons' result"),
    # -- vdos, dispersion
    ("vdos-missing", "vdos {in}/no_traj.extxyz -o {out}", None, "trajectory not found"),
    ("vdos-corrupt", "vdos {in}/garbage.extxyz -o {out}", None, "garbage.extxyz"),
    ("vdos-windows", "vdos {in}/garbage.extxyz --windows 0 -o {out}", None, "--windows: 0 is below"),
    ("dispersion-missing", "dispersion {in}/no_traj.extxyz -o {out}", None, "trajectory not found"),
    ("dispersion-corrupt", "dispersion {in}/garbage.extxyz -o {out}", None, "garbage.extxyz"),
    ("dispersion-window", "dispersion {in}/garbage.extxyz --window-ps 0 -o {out}", None, "--window-ps: 0 ps"),
    # -- run
    ("run-missing", "run {in}/missing.yaml -o {out}", None, "missing.yaml"),
    ("run-unknown-key", "run {in}/run_bad_key.yaml -o {out}", None, "unknown key 'bogus'"),
    ("run-filled-key", "run {in}/run_filled.yaml -o {out}", None, "'model' is filled by the pipeline"),
    ("run-bad-value", "run {in}/run_bad_value.yaml -o {out}", None, "md: temperature: -5"),
    ("run-existing", "run {in}/run_bad_value.yaml -o {folder}", "folder", "md: temperature: -5"),
    # -- slurm
    ("slurm-shards", "slurm label x.extxyz --shards 0 -o {out}", None, "shards = 0"),
    ("slurm-train-gpus", "slurm train {cfg} -o {out}", None, "needs GPUs"),
    ("slurm-md-atoms", "slurm md --model m.model-lammps.pt --atoms 0 -o {out}", None, "--atoms: 0 is below"),
    ("slurm-nodes", "slurm md --model m.model-lammps.pt --nodes 0 -o {out}", None, "--nodes: 0 is below"),
    ("slurm-time", "slurm md --model m.model-lammps.pt --time 12h -o {out}", None, "--time: '12h'"),
]
# fmt: on

#: cases also run through the console script, to prove it answers the same way.
SUBPROCESS = (
    "phonons-elements",
    "label-nan",
    "md-not-torchscript",
    "run-unknown-key",
    "structure-option-type",
)


# -- inputs ---------------------------------------------------------------------------------------


def _labelled(atoms_list, where: Path, store: Path) -> Path:
    from ase.io import write

    src = where.with_name(where.stem + "_in.extxyz")
    write(src, atoms_list, format="extxyz")
    assert main(["-q", "label", str(src), "--store", str(store), "-o", str(where)]) == 0
    return where


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, toy_mace) -> Path:
    """Good and bad input files, made once (seconds; a random W/Se MACE model, no training)."""
    import torch
    from ase import Atoms
    from ase.io import write

    from mlff2d.structures import monolayer, rattle, supercell

    root = tmp_path_factory.mktemp("inputs")
    wse2 = monolayer("WSe2")
    write(root / "wse2.extxyz", wse2)
    nan = supercell(wse2, 2, 2)
    nan.positions[3, 0] = np.nan
    write(root / "nan.extxyz", nan)
    overlap = wse2.copy()
    overlap.positions[1] = overlap.positions[0] + [0.1, 0.0, 0.0]
    write(root / "overlap.extxyz", overlap)
    bulk = supercell(wse2, 2, 2)
    bulk.cell[2, 2] = 6.5  # bulk-like stacking distance: no vacuum
    bulk.center(axis=2)
    write(root / "bulk.extxyz", bulk)
    write(root / "nocell.extxyz", Atoms(wse2.numbers, positions=wse2.positions), format="extxyz")
    cu = wse2.copy()
    cu.symbols[1] = "Cu"
    write(root / "cu.extxyz", cu)
    (root / "garbage.extxyz").write_text("this is not a structure\n3\n")
    (root / "text.model").write_text("hello\n")
    torch.save(toy_mace.model, root / "toy.model")
    shutil.copy(toy_mace.lammps_model, root / "toy.model-lammps.pt")
    shutil.copy(f"{toy_mace.lammps_model}.json", root / "toy.model-lammps.pt.json")
    shutil.copy(root / "toy.model", root / "fake.model-lammps.pt")
    # labelled data (SW, a few 2x2 cells) and a label store holding one label
    data = root / "data"
    data.mkdir()
    cells = [rattle(supercell(wse2, 2, 2), 0.05, seed=i) for i in range(3)]
    _labelled(cells, data / "test.extxyz", root / "store")
    for split in ("train", "valid"):
        shutil.copy(data / "test.extxyz", data / f"{split}.extxyz")
    _labelled([supercell(monolayer("MoS2"), 2, 2)], root / "mos2.extxyz", root / "store_mos2")
    shutil.rmtree(root / "store_mos2")
    # recipes and configs with one bad key or value each
    recipe = yaml.safe_load(Path(QUICK).read_text())
    _yaml(root / "dataset_bad_key.yaml", {**recipe, "bogus": 1})
    _yaml(root / "dataset.yaml", recipe)
    _yaml(root / "dataset_bad_calc.yaml", {**recipe, "calculator": "dftb"})
    _yaml(root / "dataset_bad_vacuum.yaml", {**recipe, "vacuum": 8.0})
    _yaml(root / "train_bad_key.yaml", {**yaml.safe_load(Path(CONFIG).read_text()), "bogus_key": 1})
    run = yaml.safe_load((REPO / "analysis" / "wse2_quick.yaml").read_text())
    run["dataset"]["recipe"] = QUICK
    run["train"]["config"] = CONFIG
    _yaml(root / "run_bad_key.yaml", {**run, "bogus": 1})
    _yaml(root / "run_filled.yaml", {**run, "md": {**run["md"], "model": "x.model-lammps.pt"}})
    _yaml(root / "run_bad_value.yaml", {**run, "md": {**run["md"], "temperature": -5}})
    return root


def _yaml(path: Path, data: dict) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _setup(kind: str | None, tmp: Path, inputs: Path) -> dict[str, str]:
    """Make the existing folder of a case; return its placeholder."""
    if kind is None:
        return {}
    path = tmp / kind
    if kind == "store":
        shutil.copytree(inputs / "store", path)
    elif kind == "ckpt":
        quick = os.environ.get("MLFF2D_QUICK_MODEL_RUN")
        if quick:
            shutil.copytree(quick, path)
        else:  # a stand-in: a run folder with a checkpoint
            (path / "checkpoints").mkdir(parents=True)
            (path / "checkpoints" / "wse2_sw_quick_run-1_epoch-4.pt").write_bytes(b"\x80" + bytes(range(256)))
            (path / "summary.yaml").write_text("command: train\n")
    else:
        path.mkdir()
        (path / "keep.txt").write_text("an earlier result\n")
    return {kind: str(path)}


def _snapshot(root: Path) -> dict[str, tuple]:
    """Every file and folder under ``root`` (and ``root`` itself): kind, size, mtime, content hash."""
    out = {}
    for p in [root, *sorted(root.rglob("*"))]:
        st = p.stat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
        out[str(p.relative_to(root))] = (p.is_dir(), st.st_size if digest else None, st.st_mtime_ns, digest)
    return out


def _argv(template: str, inputs: Path, out: Path, extra: dict[str, str]) -> list[str]:
    values = {
        "in": str(inputs),
        "out": str(out),
        "cfg": CONFIG,
        "test": f"{inputs}/data/test.extxyz",
        **extra,
    }
    return [part.format(**values) for part in template.split()]


def _assert_one_line(code: int, out: str, err: str, expected: str) -> None:
    assert "Traceback" not in out + err, out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert lines and lines[0].startswith("error: "), err
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("hint: ")), err
    assert expected in lines[0], lines[0]


@pytest.mark.parametrize(("argv", "setup", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_touches_nothing(
    inputs, tmp_path, monkeypatch, capsys, argv, setup, expected
):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    args = _argv(argv, inputs, tmp_path / "out", _setup(setup, tmp_path, inputs))
    before, before_inputs = _snapshot(tmp_path), _snapshot(inputs)
    code = main(args)
    out, err = capsys.readouterr()
    _assert_one_line(code, out, err, expected)
    assert _snapshot(tmp_path) == before, "a folder was written or changed"
    assert _snapshot(inputs) == before_inputs, "an input file was changed"


@pytest.mark.parametrize("case", SUBPROCESS)
def test_console_script_answers_the_same(inputs, tmp_path, case):
    argv, setup, expected = next(c[1:] for c in CASES if c[0] == case)
    args = _argv(argv, inputs, tmp_path / "out", _setup(setup, tmp_path, inputs))
    before = _snapshot(tmp_path)
    res = subprocess.run([BIN / "mlff2d", *args], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    _assert_one_line(res.returncode, res.stdout, res.stderr, expected)
    assert _snapshot(tmp_path) == before


def test_the_catalogue_covers_every_command():
    from mlff2d.cli import COMMANDS

    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 40
    covered = {c[1].split()[0] for c in CASES} | {
        "phonons compare" for c in CASES if "phonons compare" in c[1]
    }
    assert set(COMMANDS) <= covered


# -- LAMMPS inputs --------------------------------------------------------------------------------

LAMMPS_CASES = [
    ("model-missing", {"model": "{in}/missing.model-lammps.pt"}, "pair mace needs -var model"),
    ("not-torchscript", {"model": "{in}/fake.model-lammps.pt"}, "is not a TorchScript model"),
    ("wrong-elements", {"model": "{in}/toy.model-lammps.pt", "elements": "W Mo"}, "element Mo (atom type 2)"),
    ("temperature", {"model": "{in}/toy.model-lammps.pt", "T": -5}, "the temperature must be >= 0 K"),
    ("time-step", {"pair": "sw", "dt": 0}, "the time step must be > 0 fs"),
    ("supercell", {"pair": "sw", "nx": 0}, "the supercell needs nx, ny >= 1"),
    ("defect", {"pair": "sw", "defect": "V_Te"}, "-var defect V_Te: unknown defect"),
    ("pair", {"pair": "eam"}, "-var pair eam: unknown pair"),
]


@pytest.mark.parametrize(
    ("variables", "expected"), [c[1:] for c in LAMMPS_CASES], ids=[c[0] for c in LAMMPS_CASES]
)
def test_lammps_input_errors_are_clean(mace_plugin, inputs, tmp_path, variables, expected):
    from mlff2d.lammps.run import inputs_dir, run_lammps

    base = {
        "nx": 2,
        "ny": 2,
        "minimize": 0,
        "equil": 5,
        "steps": 5,
        "dump_every": 0,
        "prefix": f"{tmp_path}/",
    }
    variables = {k: str(v).format(**{"in": inputs}) for k, v in variables.items()}
    res = run_lammps(
        inputs_dir() / "in.wse2_defect", {**base, **variables}, cwd=tmp_path, check=False, timeout=120
    )
    assert res.returncode > 0, res.output[-2000:]  # an exit status, not a signal
    errors = [line for line in res.output.splitlines() if line.startswith("ERROR")]
    assert errors and expected in errors[0], res.output[-2000:]
    assert "Segmentation" not in res.output and "core dumped" not in res.output
    assert not (tmp_path / "equilibrated.restart").exists()
