"""CLI skeleton, config loading, summary.yaml, and the label/dataset commands."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ase.io import read

from mlff2d import __version__
from mlff2d.cli import COMMANDS, main
from mlff2d.config import from_dict, load_yaml
from mlff2d.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run_cli(*args, cwd=None):
    return subprocess.run([BIN / "mlff2d", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_help_lists_every_stage():
    res = run_cli("--help")
    assert res.returncode == 0
    for name in COMMANDS:
        assert name in res.stdout


def test_version():
    res = run_cli("--version")
    assert res.returncode == 0 and __version__ in res.stdout


def test_structure_command_writes_431_atoms_and_summary(tmp_path):
    out = tmp_path / "cell.extxyz"
    assert main(["structure", "WSe2", "--supercell", "12", "12", "--defect", "V_Se", "-o", str(out)]) == 0
    atoms = read(out)
    assert len(atoms) == 431
    assert "defect_center" in atoms.info
    summary = yaml.safe_load((tmp_path / "summary.yaml").read_text())
    assert summary["command"] == "structure"
    assert summary["results"]["n_atoms"] == 431
    assert "ase" in summary["versions"]


def test_lammps_data_reads_back_in_lammps(tmp_path):
    from mlff2d.lammpslib import new_lammps

    data = tmp_path / "cell.data"
    assert main(["structure", "WSe2", "--supercell", "12", "12", "--defect", "V_Se", "-o", str(data)]) == 0
    lmp = new_lammps()
    lmp.commands_list(["units metal", "atom_style atomic", f"read_data {data}"])
    assert lmp.get_natoms() == 431
    assert lmp.extract_global("ntypes") == 2
    lmp.close()


@pytest.mark.parametrize(
    ("args", "msg"),
    [
        (["structure", "WSe2", "--defect", "V_Xe", "-o", "x.extxyz"], "Xe is not in the host"),
        (["structure", "WQq2", "-o", "x.extxyz"], "unknown element"),
        (["structure", "WSe2", "--supercell", "0", "3", "-o", "x.extxyz"], "supercell size 0"),
        (["structure", "WSe2", "--strain", "0.6", "-o", "x.extxyz"], "strain"),
        (["structure", "missing.extxyz.nope", "-o", "x.extxyz"], "cannot read formula"),
        (["label", "missing.extxyz", "--calculator", "sw"], "not found"),
        (["label", "x.extxyz", "--calculator", "dftb"], "unknown calculator"),
    ],
)
def test_bad_input_exit_2_one_line(tmp_path, args, msg):
    if "x.extxyz" in args and args[0] == "label":
        assert main(["structure", "WSe2", "-o", str(tmp_path / "x.extxyz")]) == 0
    res = run_cli(*args, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert msg in res.stderr
    assert "Traceback" not in res.stderr
    assert res.stderr.startswith("error:")


@dataclasses.dataclass
class _Inner:
    width: float = 0.5


@dataclasses.dataclass
class _Cfg:
    name: str = "x"
    shells: _Inner = dataclasses.field(default_factory=_Inner)


def test_config_rejects_unknown_keys_by_name(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: a\nshells: {widht: 1.0}\n")
    with pytest.raises(ConfigError, match="unknown key 'widht'"):
        from_dict(_Cfg, load_yaml(p), str(p))
    p.write_text("name: a\nshells: {width: 1.0}\n")
    cfg = from_dict(_Cfg, load_yaml(p), str(p))
    assert cfg.shells.width == 1.0
    p.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_yaml(p)


def test_dataset_quick_recipe(tmp_path):
    out = tmp_path / "data"
    assert main(["dataset", str(ROOT / "training/datasets/wse2_sw_quick.yaml"), "-o", str(out)]) == 0
    frames = {s: read(out / f"{s}.extxyz", ":") for s in ("train", "valid", "test")}
    assert 200 <= sum(len(v) for v in frames.values()) <= 600
    types = {a.info["config_type"] for a in frames["test"]}
    assert {"pristine", "V_Se", "V_Se2", "V_W", "md"} <= types
    a = frames["train"][0]
    assert {"REF_energy", "REF_stress", "config_type", "source"} <= set(a.info)
    assert a.arrays["REF_forces"].shape == (len(a), 3)
    prov = yaml.safe_load((out / "provenance.yaml").read_text())
    assert prov["source"] == "sw-teacher" and prov["n_failed"] == 0
    # splits are by structure: no structure in two splits
    keys = [tuple(x.positions.round(6).ravel()[:6]) for s in frames.values() for x in s]
    assert len(keys) == len(set(keys))
    # running again labels nothing new
    # a finished dataset is reused; --force rebuilds the splits from the store without relabelling
    argv = ["dataset", str(ROOT / "training/datasets/wse2_sw_quick.yaml"), "-o", str(out)]
    assert main([*argv, "--force"]) == 0
    assert yaml.safe_load((out / "summary.yaml").read_text())["results"]["computed_now"] == 0


def test_recipe_unknown_key(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("name: r\ngroups: [{count: 2, rattel: [0, 0.1]}]\n")
    res = run_cli("dataset", p, "-o", tmp_path / "o")
    assert res.returncode == 2
    assert "unknown key 'rattel'" in res.stderr
