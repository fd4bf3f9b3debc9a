"""Faults: `kill -9` in the middle of md, phonons, dataset and run; a read-only folder; a full disk.

Each kill test starts the real console script, sends SIGKILL once a marker of progress is on
disk, then runs the same command again and checks that the finished work was kept (same files,
same modification times, counts of what was computed) and that the result is whole: equal to
that of an uninterrupted run.
"""

from __future__ import annotations

import errno
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.io import read, write

from conftest import write_tiny_training_config
from mlff2d.cli import main
from mlff2d.errors import CalculationFailed
from mlff2d.phonons.results import BandStructure, Modes
from mlff2d.runinfo import folder_lock
from mlff2d.structures import monolayer, rattle, supercell

MLFF2D = str(Path(sys.executable).parent / "mlff2d")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _kill_when(cmd: list[str], ready: Callable[[], bool], limit_s: float = 600) -> None:
    """Run ``mlff2d`` with ``cmd`` and SIGKILL it as soon as ``ready()`` holds."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([MLFF2D, "-q", *cmd], env=ENV, stdout=subprocess.DEVNULL, stderr=err)
        try:
            t0 = time.monotonic()
            while not ready():
                if proc.poll() is not None:
                    err.seek(0)
                    pytest.fail(f"mlff2d {cmd[0]} ended before it could be killed: {err.read()[-2000:]}")
                assert time.monotonic() - t0 < limit_s, "no progress to wait for"
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL, "it finished before the kill"


def _rerun(cmd: list[str]) -> None:
    """The same command again, to the end."""
    out = subprocess.run([MLFF2D, "-q", *cmd], env=ENV, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]


def _visible(folder: Path, pattern: str) -> list[Path]:
    """Files of ``folder`` matching ``pattern``, without hidden (temporary) ones."""
    return sorted(p for p in folder.glob(pattern) if not p.name.startswith("."))


def _stamps(files: list[Path]) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}


def _results(folder: Path) -> dict:
    return yaml.safe_load((folder / "summary.yaml").read_text())["results"]


# -- md ------------------------------------------------------------------------------------------
def _md(thermo: str) -> list[str]:
    """SW MD of a 4x4 WSe2 cell with V_Se: 2000 steps at 100 K, then 100 ps of NVE."""
    opts = "--supercell 4 4 --defect V_Se --pair sw -T 100 --equil-steps 2000 --steps 100000"
    return ["md", "WSe2", *opts.split(), "--dump-every", "1000", "--thermo", thermo]


def _frames(traj: Path) -> int:
    return traj.read_text().count("Lattice=") if traj.is_file() else 0


@pytest.mark.parametrize("thermo", ["1000", "0"])
def test_md_killed_in_production_resumes_from_the_restart(tmp_path, thermo):
    out = tmp_path / "md"
    cmd = [*_md(thermo), "-o", str(out)]
    traj = out / "traj.extxyz"
    _kill_when(cmd, lambda: _frames(traj) >= 5)
    if thermo == "0":
        # no output during the production: the LAMMPS of the killed mlff2d (it dies only when it
        # next writes to its closed pipe) runs on, and holds the folder: the rerun waits for it
        with pytest.raises(CalculationFailed, match="in use"), folder_lock(out, wait_s=0):
            pass
    restart = out / "equilibrated.restart"
    assert restart.is_file() and (out / "restart.key").is_file()
    assert not (out / "summary.yaml").exists()
    stamp = restart.stat().st_mtime_ns

    _rerun(cmd)
    res = _results(out)
    assert res["resumed_from_restart"] and res["complete"] and res["frames"] == 101
    assert restart.stat().st_mtime_ns == stamp  # not equilibrated again
    frames = read(traj, ":", format="extxyz")
    assert [a.info["Timestep"] for a in frames] == list(range(0, 100001, 1000))  # each frame once

    assert main(["-q", *_md(thermo), "-o", str(tmp_path / "uninterrupted")]) == 0
    ref = read(tmp_path / "uninterrupted" / "traj.extxyz", ":", format="extxyz")
    assert len(ref) == len(frames)
    for a, b in zip(frames, ref, strict=True):
        assert a.get_chemical_symbols() == b.get_chemical_symbols()
        np.testing.assert_allclose(a.positions, b.positions, rtol=0, atol=1e-7)
        np.testing.assert_allclose(a.get_velocities(), b.get_velocities(), rtol=0, atol=1e-7)


# -- phonons -------------------------------------------------------------------------------------
def _low_symmetry_cell(path: Path) -> Path:
    """A rattled 2x2 WSe2 cell (12 atoms, no symmetry): 72 displacements to compute."""
    write(path, rattle(supercell(monolayer("WSe2"), 2, 2), 0.03, seed=1), format="extxyz")
    return path


def _assert_same_frequencies(got: np.ndarray, ref: np.ndarray) -> None:
    """Equal to 1e-8 THz; the acoustic modes at Γ (|f| < 1e-3 THz) to 1e-6 THz.

    The forces of a resumed run equal those of an uninterrupted one to ~1e-13 eV/Å (the SW
    calculator's neighbour lists start from another structure); the square root of the
    near-zero acoustic eigenvalues turns that into ~1e-7 THz.
    """
    zero = np.abs(ref) < 1e-3
    np.testing.assert_allclose(got[~zero], ref[~zero], rtol=0, atol=1e-8)
    np.testing.assert_allclose(got[zero], ref[zero], rtol=0, atol=1e-6)


def test_phonons_killed_mid_forces_resume_from_the_cache(tmp_path):
    cell = _low_symmetry_cell(tmp_path / "cell.extxyz")
    args = ["phonons", str(cell), "--calculator", "sw", "--supercell", "4", "4", "--no-relax"]
    args += ["--npoints", "11", "--mesh", "6", "--no-figures"]
    out = tmp_path / "ph"
    forces = out / "pristine" / "forces"
    _kill_when([*args, "-o", str(out)], lambda: len(_visible(forces, "*.npy")) >= 3)
    before = _stamps(_visible(forces, "*.npy"))
    assert 3 <= len(before) < 72 and not (out / "summary.yaml").exists()
    for name in before:  # every cached file is whole (written to a temporary file, then renamed)
        assert np.load(forces / name).shape == (192, 3)

    _rerun([*args, "-o", str(out)])
    res = _results(out)["pristine"]
    assert res["displacements"] == 72
    assert res["displacements_computed"] == 72 - len(before)
    after = _stamps(_visible(forces, "*.npy"))
    assert len(after) == 72 and all(after[k] == v for k, v in before.items())  # none redone

    assert main(["-q", *args, "-o", str(tmp_path / "uninterrupted")]) == 0
    for kind, name in ((BandStructure, "bands.npz"), (Modes, "gamma_modes.npz")):
        got = kind.read(out / "pristine" / name).frequencies
        _assert_same_frequencies(got, kind.read(tmp_path / "uninterrupted" / "pristine" / name).frequencies)


# -- dataset -------------------------------------------------------------------------------------
def _dataset_recipe(path: Path, count: int) -> Path:
    groups = [
        {"count": count, "supercells": [[3, 3]], "strain": [-0.02, 0.02], "rattle": [0.02, 0.06]},
        {"count": count // 4, "defect": "V_Se", "supercells": [[3, 3]], "rattle": [0.02, 0.06]},
    ]
    path.write_text(yaml.safe_dump({"name": "faults", "calculator": "sw", "seed": 3, "groups": groups}))
    return path


def _split_arrays(folder: Path) -> dict[str, list]:
    """Positions and labels of every split, frame by frame (the label timings left out)."""
    out = {}
    for split in ("train", "valid", "test"):
        frames = read(folder / f"{split}.extxyz", ":", format="extxyz")
        out[split] = [
            (a.get_chemical_symbols(), a.positions, a.info["REF_energy"], a.arrays["REF_forces"])
            for a in frames
        ]
    return out


def test_dataset_killed_mid_labels_keeps_them(tmp_path):
    recipe = _dataset_recipe(tmp_path / "recipe.yaml", count=80)
    out = tmp_path / "data"
    labels = out / "labels"
    cmd = ["dataset", str(recipe), "-o", str(out)]
    _kill_when(cmd, lambda: len(_visible(labels, "*.extxyz")) >= 10)
    before = _stamps(_visible(labels, "*.extxyz"))
    generated = (out / "structures.extxyz").stat().st_mtime_ns
    assert 10 <= len(before) < 100 and not (out / "summary.yaml").exists()
    for name in before:
        assert read(labels / name).arrays["REF_forces"].shape[1] == 3

    _rerun(cmd)
    res = _results(out)
    assert res["n_structures"] == res["n_labelled"] == 100
    assert res["computed_now"] == 100 - len(before)
    after = _stamps(_visible(labels, "*.extxyz"))
    assert len(after) == 100 and all(after[k] == v for k, v in before.items())
    assert (out / "structures.extxyz").stat().st_mtime_ns == generated  # read back, not redrawn

    assert main(["-q", "dataset", str(recipe), "-o", str(tmp_path / "uninterrupted")]) == 0
    got, ref = _split_arrays(out), _split_arrays(tmp_path / "uninterrupted")
    for split in got:
        assert len(got[split]) == len(ref[split])
        for (sa, pa, ea, fa), (sb, pb, eb, fb) in zip(got[split], ref[split], strict=True):
            # same structures exactly; labels equal to the SW teacher's round-off (its neighbour
            # lists depend on what the LAMMPS instance computed before: ~1e-14 eV)
            assert sa == sb and ea == pytest.approx(eb, rel=0, abs=1e-9)
            np.testing.assert_array_equal(pa, pb)
            np.testing.assert_allclose(fa, fb, rtol=0, atol=1e-9)


# -- run -----------------------------------------------------------------------------------------
def _tiny_pipeline(root: Path) -> Path:
    """The tiny recipe of tests/test_pipeline.py: SW data, 2 epochs of 8 channels, no MD."""
    write_tiny_training_config(root / "tiny.yaml")
    data = _dataset_recipe(root / "data.yaml", count=12)
    recipe = {
        "name": "tiny",
        "dataset": {"recipe": str(data)},
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


def test_run_killed_in_the_phonons_stage_reuses_the_finished_stages(tmp_path):
    recipe = _tiny_pipeline(tmp_path)
    run = tmp_path / "run"
    cmd = ["run", str(recipe), "-o", str(run)]
    defect_forces = run / "phonons" / "defect" / "forces"
    _kill_when(cmd, lambda: len(_visible(defect_forces, "*.npy")) >= 3)
    assert not (run / "phonons" / "summary.yaml").exists()
    finished = ["data", "model", "evaluate", "export", "phonons_reference"]
    assert all((run / name / "summary.yaml").is_file() for name in finished)
    kept = [
        run / "data" / "train.extxyz",
        *_visible(run / "model", "*.model"),
        *_visible(run / "export", "*.pt"),
    ]
    kept += _visible(run / "phonons" / "pristine" / "forces", "*.npy") + _visible(defect_forces, "*.npy")
    before = _stamps(kept)
    n_defect = len(_visible(defect_forces, "*.npy"))

    _rerun(cmd)
    status = yaml.safe_load((run / "summary.yaml").read_text())["results"]["status"]
    assert {name: status[name] for name in finished} == dict.fromkeys(finished, "reused")
    assert status["phonons"] == status["validation"] == "ran"
    assert _stamps(kept) == before  # no stage redone, no displacement recomputed
    ph = _results(run / "phonons")
    assert ph["pristine"]["displacements_computed"] == 0
    assert ph["defect"]["displacements_computed"] == ph["defect"]["displacements"] - n_defect

    # the stage's own command (recorded in its summary), uninterrupted, gives the same phonons
    line = yaml.safe_load((run / "phonons" / "summary.yaml").read_text())["command_line"]
    argv = shlex.split(line)[1:-2]
    assert main(["-q", *argv, "--no-figures", "-o", str(tmp_path / "uninterrupted")]) == 0
    for sub, kind, name in (("pristine", BandStructure, "bands.npz"), ("defect", Modes, "gamma_modes.npz")):
        got = kind.read(run / "phonons" / sub / name).frequencies
        _assert_same_frequencies(got, kind.read(tmp_path / "uninterrupted" / sub / name).frequencies)


# -- a folder that cannot be written, a full disk --------------------------------------------------
HINT_OUTPUT = "hint: choose another --output"
PHONONS = ["phonons", "WSe2", "--calculator", "sw", "--supercell", "3", "3", "--npoints", "11", "--mesh", "6"]


def _error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), err
    return lines


@contextmanager
def _immutable(folder: Path) -> Iterator[None]:
    """``chattr +i folder``: nothing can be created in it, not even by root (skip where unsupported)."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported here")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_read_only_output_folder_is_a_clear_error(tmp_path, capsys):
    """Exit 2 and one line naming the path, for a folder root may not write and for a path under a file."""
    ro = tmp_path / "ro"
    ro.mkdir()
    with _immutable(ro):
        assert main(["dataset", str(_dataset_recipe(tmp_path / "r.yaml", 4)), "-o", str(ro)]) == 2
        assert _error_lines(capsys) == [f"error: cannot write to {ro}: permission denied", HINT_OUTPUT]
        assert list(ro.iterdir()) == []

    afile = tmp_path / "afile"
    afile.write_text("not a folder\n")
    assert main([*PHONONS, "-o", str(afile / "ph")]) == 2
    assert _error_lines(capsys) == [f"error: cannot write to {afile}/ph: not a directory", HINT_OUTPUT]
    assert afile.read_text() == "not a folder\n"


def test_finished_read_only_folder_is_still_reused(tmp_path, capsys):
    out = tmp_path / "ph"
    assert main(["-q", *PHONONS, "-o", str(out)]) == 0
    with _immutable(out), _immutable(out / "pristine"):
        assert main(["-q", *PHONONS, "-o", str(out)]) == 0
    assert "error" not in capsys.readouterr().err


def _full_after(n_ok: int, real_write: Callable) -> Callable:
    """A writer that fails like a full disk after ``n_ok`` calls: half a file, then ENOSPC."""
    calls = []

    def write_or_fail(path, *args, **kwargs):
        calls.append(path)
        if len(calls) <= n_ok:
            return real_write(path, *args, **kwargs)
        with open(path, "w") as fh:
            fh.write("12 atoms, cut short")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    return write_or_fail


def test_full_disk_while_labelling_keeps_the_finished_labels(tmp_path, monkeypatch, capsys):
    """The disk fills at the 5th label: exit 1, one line naming it, no partial file; then resumed."""
    import mlff2d.labeling.store as store

    recipe = _dataset_recipe(tmp_path / "r.yaml", 8)
    out = tmp_path / "data"
    monkeypatch.setattr(store, "write", _full_after(4, store.write))
    assert main(["dataset", str(recipe), "-o", str(out)]) == 1
    error, hint = _error_lines(capsys)
    assert error.startswith(f"error: no space left on device while writing {out}/labels/")
    assert hint == "hint: finished work is kept; free space and rerun"
    assert sorted(p.name for p in (out / "labels").iterdir()) == sorted(
        p.name for p in _visible(out / "labels", "*.extxyz")
    )  # no temporary file left
    before = _stamps(_visible(out / "labels", "*.extxyz"))
    assert len(before) == 4 and not (out / "summary.yaml").exists()

    monkeypatch.undo()  # space freed
    assert main(["-q", "dataset", str(recipe), "-o", str(out)]) == 0
    res = _results(out)
    assert res["computed_now"] == 10 - 4 and res["n_labelled"] == 10
    after = _stamps(_visible(out / "labels", "*.extxyz"))
    assert all(after[k] == v for k, v in before.items())


def test_full_disk_while_rewriting_leaves_the_previous_file(tmp_path, monkeypatch, capsys):
    """A forced rerun meets a full disk writing provenance.yaml: the old file stays whole."""
    from pathlib import Path as _Path

    recipe = _dataset_recipe(tmp_path / "r.yaml", 4)
    out = tmp_path / "data"
    assert main(["-q", "dataset", str(recipe), "-o", str(out)]) == 0
    provenance = (out / "provenance.yaml").read_bytes()
    real = _Path.write_text

    def fail_provenance(self, data, *args, **kwargs):
        if self.name.startswith(".provenance"):
            real(self, data[: len(data) // 2], *args, **kwargs)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, data, *args, **kwargs)

    monkeypatch.setattr(_Path, "write_text", fail_provenance)
    assert main(["dataset", str(recipe), "-o", str(out), "--force"]) == 1
    error, _ = _error_lines(capsys)
    assert error == f"error: no space left on device while writing {out}/provenance.yaml"
    assert (out / "provenance.yaml").read_bytes() == provenance
    assert not [p for p in out.rglob(".*") if p.name != ".lock"]  # no temporary file left
    # the split files were rewritten by the failed run: no summary vouches for them any more
    assert not (out / "summary.yaml").exists()
    monkeypatch.undo()
    assert main(["-q", "dataset", str(recipe), "-o", str(out)]) == 0
    assert _results(out)["computed_now"] == 0


@contextmanager
def _tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """A small file system mounted at ``folder`` (``mount -t tmpfs -o options``; skip without root)."""
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small file system needs root")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_read_only_file_system_is_a_clear_error(tmp_path, capsys):
    with _tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        assert main([*PHONONS, "-o", str(ro / "ph")]) == 2
        assert _error_lines(capsys) == [f"error: cannot write to {ro}/ph: read-only file system", HINT_OUTPUT]


def test_a_really_full_disk(tmp_path, capsys):
    """Phonons into a 200 KiB file system: exit 1 and one line; after growing it, the rerun resumes."""
    with _tmpfs(tmp_path / "disk", "size=200k") as disk:
        out = disk / "ph"
        args = [*PHONONS, "--defect", "V_Se", "--defect-supercell", "4", "4", "-o", str(out)]
        assert main(args) == 1
        error, hint = _error_lines(capsys)
        assert error.startswith(f"error: no space left on device while writing {out}")
        assert hint == "hint: finished work is kept; free space and rerun"
        assert not (out / "summary.yaml").exists()
        assert not [p for p in out.rglob(".*") if p.name != ".lock"]  # no temporary file left
        cached = _visible(out / "pristine" / "forces", "*.npy")
        assert all(np.load(p).shape == (27, 3) for p in cached)

        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)  # space freed
        assert main(["-q", *args]) == 0
        assert _results(out)["pristine"]["displacements_computed"] == 3 - len(cached)


def test_a_failed_run_leaves_no_summary_that_vouches_for_its_files(tmp_path, monkeypatch, capsys):
    """Settings A finish; settings B rewrite the bands, then fail: A again recomputes, not reuses."""
    import mlff2d.phonons.core as core
    from mlff2d.errors import InputError
    from mlff2d.phonons.stage import PhononsWorkflow

    out = tmp_path / "ph"
    a = [*PHONONS, "--no-figures", "-o", str(out)]
    b = [*PHONONS[:8], "21", *PHONONS[9:], "--no-figures", "-o", str(out)]  # --npoints 21
    assert main(["-q", *a]) == 0
    bands_a = BandStructure.read(out / "pristine" / "bands.npz").frequencies
    summary_a = (out / "summary.yaml").read_bytes()

    def refuse(self, record):
        raise InputError("refused before writing anything")

    with monkeypatch.context() as m:  # an input refused inside the stage: the record stays
        m.setattr(PhononsWorkflow, "_run", refuse)
        assert main(b) == 2
    assert (out / "summary.yaml").read_bytes() == summary_a

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as m:  # B fails after writing its bands
        m.setattr(core, "mesh_pdos", disk_full)
        assert main(b) == 1
    bands_b = BandStructure.read(out / "pristine" / "bands.npz").frequencies
    assert bands_b.shape != bands_a.shape  # B's bands (on 21 q-points a segment) in A's folder
    assert not (out / "summary.yaml").exists()
    capsys.readouterr()
    assert main(a) == 0
    assert "reused" not in capsys.readouterr().out
    _assert_same_frequencies(BandStructure.read(out / "pristine" / "bands.npz").frequencies, bands_a)
