"""``lammps_inputs/in.wse2_*`` and ``mlff2d md``: builds, defects, resumability, dynasor-readable output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlff2d.cli import main
from mlff2d.lammps.run import inputs_dir, read_thermo, run_lammps

REPO = Path(__file__).resolve().parents[1]
LMP = Path(sys.prefix) / "bin" / "lmp"


def _fresh_env() -> dict[str, str]:
    """A login-like environment: no LD_LIBRARY_PATH, no LAMMPS_* variables, no venv activation."""
    return {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "OMP_NUM_THREADS": "1"}


def test_in_wse2_defect_runs_from_fresh_shell_with_model(mace_plugin, toy_mace, tmp_path):
    cmd = [
        str(LMP),
        "-in",
        "lammps_inputs/in.wse2_defect",
        "-var",
        "model",
        str(toy_mace.lammps_model),
        "-var",
        "nx",
        "4",
        "-var",
        "ny",
        "4",
        "-var",
        "minimize",
        "0",
        "-var",
        "equil",
        "10",
        "-var",
        "steps",
        "10",
        "-var",
        "dump_every",
        "5",
        "-var",
        "thermo",
        "5",
        "-var",
        "prefix",
        f"{tmp_path}/",
        "-log",
        str(tmp_path / "log.lammps"),
    ]
    res = subprocess.run(cmd, cwd=REPO, env=_fresh_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "pair_style mace: model" in res.stdout
    assert "SYSTEM: 47 atoms" in res.stdout
    assert (tmp_path / "equilibrated.restart").is_file()
    from ase.io import read

    frames = read(tmp_path / "traj.extxyz", index=":")
    assert len(frames) == 3 and len(frames[0]) == 47
    assert frames[0].arrays["vel"].shape == (47, 3)


def test_in_wse2_defect_needs_a_model(tmp_path):
    res = run_lammps(inputs_dir() / "in.wse2_defect", {"nx": 2, "ny": 2}, cwd=tmp_path, check=False)
    assert res.returncode == 2
    assert "pair mace needs -var model" in res.output


@pytest.mark.parametrize(
    ("defect", "n_w", "n_se"),
    [
        ("none", 16, 32),
        ("V_Se", 16, 31),
        ("V_Se2", 16, 30),
        ("V_W", 15, 32),
        ("Se_W", 15, 33),
        ("W_Se", 17, 31),
    ],
)
def test_lammps_builder_defects(tmp_path, defect, n_w, n_se):
    """The 4x4 cell built by LAMMPS alone, with each defect (SW, zero-step stages)."""
    script = tmp_path / "in.count"
    script.write_text(
        f"include {inputs_dir()}/in.wse2_defect\n"
        "group W type 1\ngroup Se type 2\n"
        'print "COUNT $(count(W)) $(count(Se))"\n'
    )
    res = run_lammps(
        script,
        {
            "pair": "sw",
            "nx": 4,
            "ny": 4,
            "defect": defect,
            "minimize": 0,
            "equil": 0,
            "steps": 0,
            "dump_every": 0,
            "prefix": f"{tmp_path}/",
        },
        cwd=tmp_path,
    )
    assert f"COUNT {n_w} {n_se}" in res.output


def test_pristine_and_bench_inputs(tmp_path):
    for name, n_atoms, extra in (
        ("in.wse2_pristine", 48, {"steps": 20, "equil": 10, "dump_every": 0}),
        ("in.bench", 47, {}),
    ):
        res = run_lammps(
            inputs_dir() / name,
            {"inputs": inputs_dir(), "pair": "sw", "nx": 4, "ny": 4, "prefix": f"{tmp_path}/", **extra},
            cwd=tmp_path,
        )
        assert f"SYSTEM: {n_atoms} atoms" in res.output
        assert res.loop_times()[-1]["steps"] == extra.get("steps", 20)


def test_mlff2d_md_sw_resume_and_dynasor(tmp_path, capsys):
    out = tmp_path / "md"
    args = [
        "-q",
        "md",
        "WSe2",
        "--supercell",
        "6",
        "6",
        "--defect",
        "V_Se",
        "--pair",
        "sw",
        "--equil-steps",
        "100",
        "--steps",
        "200",
        "--dump-every",
        "4",
        "--thermo",
        "20",
        "-T",
        "100",
        "-o",
        str(out),
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "Nyquist 125.00 THz, resolution 5.0000 THz" in text
    summ = yaml.safe_load((out / "summary.yaml").read_text())
    r = summ["results"]
    assert r["complete"] and r["frames"] == 51 and r["n_atoms"] == 107
    assert r["defect_center_A"] is not None and r["elements"] == ["W", "Se"]
    assert abs(r["nve_drift_meV_per_atom_per_ps"]) < 0.1
    thermo = read_thermo(out / "log.lammps")[-1]
    assert thermo["Step"][-1] == 200

    # a finished run is a no-op; a lost trajectory is redone from the equilibrated restart
    assert main(args) == 0
    assert "nothing to do" in capsys.readouterr().out
    (out / "traj.extxyz").unlink()
    assert main(args) == 0
    summ = yaml.safe_load((out / "summary.yaml").read_text())
    assert summ["results"]["resumed_from_restart"] and summ["results"]["frames"] == 51

    from dynasor import Trajectory

    traj = Trajectory(
        str(out / "traj.extxyz"),
        trajectory_format="extxyz",
        length_unit="Angstrom",
        time_unit="ps",
        atomic_indices="read_from_trajectory",
    )
    frames = list(traj)
    assert len(frames) == 51
    v = frames[0].velocities_by_type
    assert v["W"].shape == (36, 3) and v["Se"].shape == (71, 3) and np.isfinite(v["Se"]).all()
    np.testing.assert_allclose(np.diag(traj.cell)[:2], [19.92, 17.2512], atol=1e-3)


def test_mlff2d_md_mace_short(mace_plugin, toy_mace, tmp_path):
    out = tmp_path / "md"
    assert (
        main(
            [
                "-q",
                "md",
                "WSe2",
                "--supercell",
                "4",
                "4",
                "--pair",
                "mace",
                "--model",
                str(toy_mace.lammps_model),
                "--no-minimize",
                "--equil-steps",
                "10",
                "--steps",
                "10",
                "--dump-every",
                "5",
                "--thermo",
                "5",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    r = yaml.safe_load((out / "summary.yaml").read_text())["results"]
    assert r["frames"] == 3 and r["n_atoms"] == 47
    assert "pair_style mace: periodic-image" in (out / "lammps.out").read_text()


def test_mlff2d_md_errors(tmp_path, capsys):
    never = str(tmp_path / "never")
    assert main(["-q", "md", "--pair", "mace", "-o", never]) == 2
    assert main(["-q", "md", "--pair", "sw", "--steps", "10", "--dump-every", "3", "-o", never]) == 2
    assert not (tmp_path / "never").exists()
    capsys.readouterr()


def _error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]


def test_mlff2d_md_bad_values_exit_2_naming_the_option(tmp_path, capsys):
    out = str(tmp_path / "x")
    assert main(["-q", "md", "WSe2", "--pair", "sw", "-T", "-5", "-o", out]) == 2
    (err,) = _error_lines(capsys)
    assert "--temperature" in err and "-5" in err
    assert main(["-q", "md", "WSe2", "--pair", "mace", "-o", out]) == 2
    (err,) = _error_lines(capsys)
    assert "--model" in err
    assert main(["-q", "md", "WSe2", "--pair", "mace", "--model", str(tmp_path / "no.pt"), "-o", out]) == 2
    (err,) = _error_lines(capsys)
    assert "no.pt" in err and "not found" in err
    for bad in (["--dt", "0"], ["--steps", "-1"], ["-n", "0"]):
        assert main(["-q", "md", "--pair", "sw", *bad, "-o", out]) == 2
        (err,) = _error_lines(capsys)
        assert err.startswith("error: " + {"--dt": "--dt", "--steps": "--steps", "-n": "--nprocs"}[bad[0]])
    assert not (tmp_path / "x").exists()


def test_md_model_elements_checked_against_the_cell(toy_mace, tmp_path, capsys):
    """The toy model knows W and Se: a MoS2 cell is refused before LAMMPS starts."""
    args = ["-q", "md", "MoS2", "--model", str(toy_mace.lammps_model), "-o", str(tmp_path / "x")]
    assert main(args) == 2
    (err,) = _error_lines(capsys)
    assert "Mo" in err and "S" in err


def test_md_options_come_from_the_settings_defaults():
    import dataclasses

    from mlff2d.lammps.commands import md
    from mlff2d.lammps.workflow import MDSettings

    defaults = {f.name: f.default for f in dataclasses.fields(MDSettings)}
    params = {p.name: p for p in md.params}
    assert set(defaults) <= set(params)
    for name, default in defaults.items():
        assert params[name].default == default, name
    flags = {p.name: p.opts for p in md.params}
    assert "-T" in flags["temperature"] and "-n" in flags["nprocs"] and "-o" in flags["output"]
    assert MDSettings(steps=100, dump_every=4).expected_frames == 26


def test_md_workflow_from_python_result_and_reuse(tmp_path):
    from mlff2d.lammps.workflow import MDResult, MDSettings, MDWorkflow

    settings = MDSettings(
        supercell=(4, 4), pair="sw", minimize=False, equil_steps=10, steps=20, dump_every=5, thermo=5
    )
    wf = MDWorkflow(settings, tmp_path / "md", progress=False)
    res = wf.run()
    assert wf.status == "ran" and isinstance(res, MDResult)
    assert res.trajectory is not None and res.trajectory.is_file()
    assert res.structure.is_file() and res.data.is_file() and res.log.is_file() and res.screen.is_file()
    assert res.restart is not None and res.restart.is_file()
    assert res.n_atoms == 47 and res.frames == 5 and res.complete
    assert res.elements == ["W", "Se"] and res.mean_temperature_K is not None
    from ase.io import read

    assert len(read(res.structure)) == 47 and len(read(res.trajectory, index=":")) == 5

    again = MDWorkflow(settings, tmp_path / "md", progress=False)
    res2 = again.run()
    assert again.status == "reused"
    assert res2.trajectory == res.trajectory and res2.frames == 5
    assert MDWorkflow.load(tmp_path / "md").structure == res.structure
    # a truncated trajectory is not finished: the production reruns from the equilibrated restart
    lines = res.trajectory.read_text().splitlines(keepends=True)
    res.trajectory.write_text("".join(lines[: len(lines) // 2]))
    third = MDWorkflow(settings, tmp_path / "md", progress=False)
    res3 = third.run()
    assert third.status == "ran" and res3.resumed_from_restart and res3.frames == 5
    # a different production length does not reuse the finished run
    longer = MDWorkflow(settings.replace(steps=40), tmp_path / "md", progress=False)
    assert not longer.is_finished()
    assert "--pair sw" in wf.command_line() and "--steps 20" in wf.command_line()
