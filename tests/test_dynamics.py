"""Phonons from MD with dynasor: VDOS and current correlations of LAMMPS runs.

The reference is the SW teacher: MD of a 12×12 V_Se cell at 50 K in LAMMPS against the
harmonic Γ-point DOS of the same SW model on the same (relaxed) cell from phonopy.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from mlff2d.cli import main
from mlff2d.dynamics import VDOSResult, inplane_distances, load_trajectory, radial_shells
from mlff2d.dynamics.results import DispersionResult, HarmonicDOS
from mlff2d.dynamics.vdos import compute_vdos
from mlff2d.dynamics.workflow import (
    DispersionSettings,
    DispersionWorkflow,
    VDOSSettings,
    VDOSStageResult,
    VDOSWorkflow,
)
from mlff2d.errors import InputError
from mlff2d.lammpslib import new_lammps
from mlff2d.reference.sw import SWTeacher, sw_pair_commands
from mlff2d.structures import make_defect, monolayer, supercell, write_structure

DT_FS = 1.0
STRIDE = 20


@pytest.fixture(scope="module", autouse=True)
def _one_numba_thread():
    """dynasor's numba kernels: one thread (parallel barriers crawl on a loaded 2-core box)."""
    import numba

    n = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(n)


def _lammps_md(
    data,
    pair: list[str],
    prefix,
    T: float,
    equil: int,
    steps: int,
    dt_fs: float = DT_FS,
    every: int = STRIDE,
    custom_dump: bool = False,
) -> None:
    """Langevin at T, then NVE dumping extxyz (species, pos, vel) every ``every`` steps."""
    lmp = new_lammps()
    cmds = [
        "units metal",
        "atom_style atomic",
        "boundary p p f",
        "atom_modify map array",
        f"read_data {data}",
        *pair,
        "neighbor 1.0 bin",
        f"timestep {dt_fs / 1000}",
        f"velocity all create {2 * T} 4711 mom yes rot no dist gaussian",
        "fix nve all nve",
        f"fix bath all langevin {T} {T} 0.1 4711 zero yes",
        f"run {equil}",
        "unfix bath",
        "reset_timestep 0",
        f"dump x all extxyz {every} {prefix}traj.extxyz",
        "dump_modify x element W Se sort id forces no time yes format line "
        "'%s %.10g %.10g %.10g %.10g %.10g %.10g'",
    ]
    if custom_dump:
        cmds += [
            f"dump c all custom {every} {prefix}traj.lammpstrj id type x y z vx vy vz",
            "dump_modify c sort id time yes",
        ]
    lmp.commands_list([*cmds, f"run {steps}"])
    lmp.close()


def _relax_sw(atoms: Atoms, data) -> Atoms:
    """Relax the positions with the SW teacher in LAMMPS (fixed cell)."""
    write_structure(atoms, data, "lammps-data")
    lmp = new_lammps()
    lmp.commands_list(
        [
            "units metal",
            "atom_style atomic",
            "boundary p p f",
            "atom_modify map array",
            f"read_data {data}",
            *sw_pair_commands(["W", "Se"]),
            "min_style cg",
            "minimize 0 1e-6 5000 50000",
        ]
    )
    x = np.ctypeslib.as_array(lmp.gather_atoms("x", 1, 3), shape=(3 * len(atoms),))
    out = atoms.copy()
    out.positions = x.reshape(-1, 3)
    lmp.close()
    return out


def _harmonic_gamma_dos(atoms: Atoms, path) -> np.ndarray:
    """Phonopy Γ-point DOS of SW with the cell as its own unit cell; returns the frequencies."""
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    unit = PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(), cell=atoms.cell.array, positions=atoms.positions
    )
    ph = Phonopy(unit, supercell_matrix=np.eye(3, dtype=int))
    ph.generate_displacements(distance=0.01)
    calc, forces = SWTeacher(), []
    for sc in ph.supercells_with_displacements:
        a = Atoms(sc.symbols, positions=sc.positions, cell=sc.cell, pbc=True)
        a.calc = calc
        forces.append(a.get_forces())
    ph.forces = forces
    ph.produce_force_constants()
    ph.run_mesh([1, 1, 1], is_gamma_center=True)
    ph.run_total_dos(sigma=0.04, freq_min=-0.5, freq_max=12.0, freq_pitch=0.01)
    ph.write_total_dos(filename=str(path))
    return ph.mesh.frequencies.ravel()


def _primitive_phonopy(path) -> None:
    """phonopy_params.yaml of the SW primitive cell (6×6 supercell) for the harmonic bands."""
    from ase.optimize import BFGS
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    prim = monolayer("WSe2")
    prim.calc = SWTeacher()
    BFGS(prim, logfile=None).run(fmax=1e-5)
    unit = PhonopyAtoms(symbols=prim.get_chemical_symbols(), cell=prim.cell.array, positions=prim.positions)
    ph = Phonopy(unit, supercell_matrix=np.diag([6, 6, 1]))
    ph.generate_displacements(distance=0.01)
    calc, forces = SWTeacher(), []
    for sc in ph.supercells_with_displacements:
        a = Atoms(sc.symbols, positions=sc.positions, cell=sc.cell, pbc=True)
        a.calc = calc
        forces.append(a.get_forces())
    ph.forces = forces
    ph.save(str(path))


@pytest.fixture(scope="module")
def sw_md(tmp_path_factory):
    """12×12 V_Se: SW-relaxed cell, harmonic Γ DOS, 4 ps Langevin + 30 ps NVE at 50 K."""
    d = tmp_path_factory.mktemp("dynamics_sw")
    atoms = make_defect(supercell(monolayer("WSe2"), 12, 12), "V_Se")
    relaxed = _relax_sw(atoms, d / "cell.data")
    write_structure(relaxed, d / "relaxed.extxyz")
    write_structure(relaxed, d / "relaxed.data", "lammps-data")
    freqs = _harmonic_gamma_dos(relaxed, d / "total_dos.dat")
    _primitive_phonopy(d / "phonopy_params.yaml")
    _lammps_md(d / "relaxed.data", sw_pair_commands(["W", "Se"]), f"{d}/", T=50.0, equil=4000, steps=30000)
    return {"dir": d, "atoms": relaxed, "freqs": freqs}


def test_radial_shells_definition():
    d = np.array([0.0, 2.99, 3.0, 5.5, 9.0])
    edges, idx = radial_shells(d, 3.0)
    assert edges.tolist() == [0.0, 3.0, 6.0, 9.0, 12.0]
    assert idx.tolist() == [0, 0, 1, 1, 3]
    atoms = supercell(monolayer("WSe2"), 4, 4)
    r = inplane_distances(atoms, atoms.positions[0])
    assert r[0] == 0.0 and r.max() < np.linalg.norm(atoms.cell[0]) * 0.6  # minimum image
    with pytest.raises(InputError):
        radial_shells(d, 0.0)


def test_vdos_sw_matches_harmonic(sw_md, capsys):
    d, out = sw_md["dir"], sw_md["dir"] / "vdos"
    args = [
        "vdos",
        str(d / "traj.extxyz"),
        "--structure",
        str(d / "relaxed.extxyz"),
        "--dt-fs",
        str(DT_FS),
        "--windows",
        "3",
        "--harmonic",
        str(d / "total_dos.dat"),
        "-o",
        str(out),
    ]
    assert main(args) == 0
    res = VDOSResult.read(out / "vdos")
    assert res.method == "sed" and res.stride == STRIDE and res.n_atoms == 431
    assert res.resolution_thz == pytest.approx(0.1, abs=1e-3)
    assert 40.0 < res.window_temperatures.mean() < 60.0
    # partial spectra add up to the total; the total holds 3 N states
    np.testing.assert_allclose(res.shell_dos.sum(axis=0), res.total, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(res.element_dos.sum(axis=0), res.total, rtol=1e-10, atol=1e-9)
    assert res.shell_counts.sum() == 431
    assert res.integral(res.total) == pytest.approx(3 * 431, rel=0.02)
    # peak positions of the harmonic DOS of SW on the same cell, within 0.15 THz
    import yaml

    summary = yaml.safe_load((out / "summary.yaml").read_text())
    peaks = summary["results"]["peaks"]
    assert len(peaks) >= 5
    for row in peaks:
        assert abs(row["shift_thz"]) < 0.15, row
    for stem in ("vdos_vs_harmonic", "vdos_radial"):
        assert (out / f"{stem}.png").is_file() and (out / f"{stem}.pdf").is_file()
    h = HarmonicDOS.read(out / "harmonic_dos")
    assert h.frequencies.shape == res.frequencies.shape
    # the same call again is a no-op: the finished folder is reused
    before = (out / "summary.yaml").stat().st_mtime_ns
    assert main(args) == 0
    assert "reused" in capsys.readouterr().out
    assert (out / "summary.yaml").stat().st_mtime_ns == before


def test_dispersion_sw(sw_md):
    d, out = sw_md["dir"], sw_md["dir"] / "dispersion"
    # no --dt-fs: the time step comes from the Time fields of the LAMMPS extxyz dump
    rc = main(
        [
            "dispersion",
            str(d / "traj.extxyz"),
            "--structure",
            str(d / "relaxed.extxyz"),
            "--window-ps",
            "4",
            "--window-step",
            "200",
            "--harmonic",
            str(d / "phonopy_params.yaml"),
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    res = DispersionResult.read(out / "dispersion")
    assert res.labels == ["Γ", "M", "K", "Γ"] and res.supercell == [12, 12]
    assert len(res.q_points) == 13  # 7 on Γ-M, 2 more to K, 4 more back to Γ
    assert res.current_l.shape == (13, len(res.frequencies))
    ok = np.isfinite(res.peak_shift)
    assert ok.sum() >= 20
    # at 50 K the peaks sit on the harmonic SW bands
    assert np.median(np.abs(res.peak_shift[ok])) < 0.08
    # the LA branch at M (q index 6): a longitudinal peak at a harmonic frequency
    la_m = res.peak_center[(res.peak_q_index == 6) & (res.peak_branch == 0)]
    assert np.min(np.abs(la_m[:, None] - res.harmonic_at_q[6][None, :])) < 0.1
    assert (out / "dispersion_md.png").is_file() and (out / "dispersion_peaks.csv").is_file()


def test_formats_and_vdos_routes_agree(tmp_path):
    """LAMMPS custom dump (tilted box) = extxyz; dynasor's PSD route = its SED route."""
    atoms = make_defect(supercell(monolayer("WSe2"), 3, 3), "V_Se")
    write_structure(atoms, tmp_path / "c.data", "lammps-data")
    _lammps_md(
        tmp_path / "c.data",
        sw_pair_commands(["W", "Se"]),
        f"{tmp_path}/",
        T=100.0,
        equil=10,
        steps=200,
        every=10,
        custom_dump=True,
    )
    a = load_trajectory(tmp_path / "traj.extxyz")
    b = load_trajectory(tmp_path / "traj.lammpstrj")  # time from `dump_modify time yes`
    assert a.dt_fs == b.dt_fs == pytest.approx(1.0)
    assert (a.fmt, b.fmt) == ("extxyz", "lammps-dump")
    assert a.n_frames == b.n_frames == 21 and a.stride == b.stride == 10
    ta, tb = a.open(properties="velocities"), b.open(properties="velocities")
    np.testing.assert_allclose(ta.cell, atoms.cell.array, atol=1e-4)
    np.testing.assert_allclose(tb.cell, atoms.cell.array, atol=1e-4)
    fa, fb = next(iter(ta)), next(iter(tb))
    np.testing.assert_allclose(
        fa.get_velocities_as_array(ta.atomic_indices),
        fb.get_velocities_as_array(tb.atomic_indices),
        rtol=1e-4,
        atol=1e-8,
    )
    runs = {
        (t.fmt, m): compute_vdos(t, atoms, VDOSSettings(trajectory=t.path, windows=2, method=m))
        for t in (a, b)
        for m in ("sed", "psd")
    }
    ref = runs[("extxyz", "sed")]
    for key, res in runs.items():
        np.testing.assert_allclose(
            res.total, ref.total, rtol=1e-4, atol=1e-4 * ref.total.max(), err_msg=str(key)
        )
        np.testing.assert_allclose(
            res.shell_dos, ref.shell_dos, rtol=1e-4, atol=1e-4 * ref.total.max(), err_msg=str(key)
        )
    ref.write(tmp_path / "v")
    back = VDOSResult.read(tmp_path / "v")
    np.testing.assert_array_equal(back.total, ref.total)
    assert back.elements == ["W", "Se"] and back.method == "sed"
    with pytest.raises(InputError):
        DispersionResult.read(tmp_path / "v")


def test_vdos_needs_time_step(tmp_path):
    (tmp_path / "t.extxyz").write_text(
        '1\nLattice="1 0 0 0 1 0 0 0 1" Properties=species:S:1:pos:R:3\nW 0 0 0\n'
    )
    rc = main(
        [
            "vdos",
            str(tmp_path / "t.extxyz"),
            "--structure",
            str(tmp_path / "t.extxyz"),
            "-o",
            str(tmp_path / "out"),
        ]
    )
    assert rc == 2


def test_mace_plugin_same_commands(tmp_path, request):
    """`mlff2d md` with an exported MACE model through the plugin, then the same commands."""
    from mlff2d.lammps.plugin import find_plugin

    if find_plugin() is None:
        pytest.skip("maceplugin.so is not built (make plugin)")
    model = _exported_model(tmp_path, request)
    md = tmp_path / "md"
    rc = main(
        [
            "md",
            "WSe2",
            "--supercell",
            "4",
            "4",
            "--defect",
            "V_Se",
            "--pair",
            "mace",
            "--model",
            str(model),
            "--no-minimize",
            "-T",
            "20",
            "--dt",
            "0.5",
            "--equil-steps",
            "40",
            "--steps",
            "120",
            "--dump-every",
            "4",
            "-o",
            str(md),
        ]
    )
    assert rc == 0
    # no --structure, --dt-fs, --stride: from md's structure.extxyz, summary.yaml and the dump
    traj = str(md / "traj.extxyz")
    assert main(["vdos", traj, "--windows", "2", "-o", str(tmp_path / "vdos")]) == 0
    res = VDOSResult.read(tmp_path / "vdos" / "vdos")
    assert res.dt_fs == 0.5 and res.stride == 4 and res.n_atoms == 47
    np.testing.assert_allclose(res.shell_dos.sum(axis=0), res.total, rtol=1e-10, atol=1e-9)
    assert main(["dispersion", traj, "--window-ps", "0.03", "-o", str(tmp_path / "disp")]) == 0
    assert DispersionResult.read(tmp_path / "disp" / "dispersion").supercell == [4, 4]


def _exported_model(tmp_path, request):
    """The exported quick model (trained on SW labels, tests/conftest.py)."""
    return request.getfixturevalue("quick_model").lammps_model


# --- the workflows (issue 15) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def md_run(tmp_path_factory):
    """`mlff2d md` of a 3×3 V_Se cell with the SW teacher: 401 frames every 10 fs (dt 2 fs × 5)."""
    d = tmp_path_factory.mktemp("dynamics_md")
    args = ["md", "WSe2", "--pair", "sw", "--supercell", "3", "3", "--defect", "V_Se", "--no-minimize"]
    args += ["-T", "50", "--dt", "2", "--equil-steps", "100", "--steps", "2000", "--dump-every", "5"]
    assert main([*args, "-o", str(d / "md")]) == 0
    return d


def test_vdos_workflow_from_python(md_run):
    """No --structure, --dt-fs, --stride: from the md stage's result; a second run is reused."""
    traj = md_run / "md" / "traj.extxyz"
    settings = VDOSSettings(trajectory=traj, windows=2)
    wf = VDOSWorkflow(settings, md_run / "vdos", progress=False)
    res = wf.run()
    assert isinstance(res, VDOSStageResult) and wf.status == "ran"
    files = res.output_files()
    assert {"vdos", "vdos_json", "figures.vdos_vs_harmonic.png", "figures.vdos_radial.pdf"} <= set(files)
    assert all(p.is_file() for p in files.values())
    assert res.harmonic_dos is None and res.peaks_csv is None and res.peaks == []
    assert (res.dt_fs, res.stride, res.frame_dt_fs, res.n_atoms) == (2.0, 5, 10.0, 26)
    assert res.nyquist_thz == pytest.approx(50.0) and res.resolution_thz == pytest.approx(0.5)
    assert res.total_states == pytest.approx(3 * 26, rel=0.02) and res.shell_sum_max_abs_dev < 1e-9
    spectra = VDOSResult.read(res.vdos)
    assert spectra.n_windows == 2 and spectra.shell_counts.tolist() == res.shell_counts

    again = VDOSWorkflow(settings.replace(threads=1), md_run / "vdos")  # speed only: same result
    back = again.run()
    assert again.status == "reused"
    assert back.vdos == res.vdos and back.figures == res.figures and back.summary() == res.summary()
    assert VDOSWorkflow.load(md_run / "vdos").resolution_thz == res.resolution_thz

    # a DOS .npz as the harmonic reference: the VDOS itself, so every peak matches exactly
    with_h = VDOSWorkflow(settings.replace(harmonic=res.vdos), md_run / "vdos_self", progress=False).run()
    assert with_h.harmonic_dos.is_file() and with_h.peaks_csv.is_file()
    assert len(with_h.peaks) >= 3 and with_h.max_abs_peak_shift_thz == pytest.approx(0.0, abs=1e-9)


def test_harmonic_from_phonons_folder(md_run, capsys):
    """--harmonic given an `mlff2d phonons` folder: its defect DOS and shells, its pristine bands."""
    from mlff2d.phonons.stage import PhononsSettings, PhononsWorkflow

    ph = md_run / "phonons"
    s = PhononsSettings(
        calculator="sw",
        supercell=(2, 2),
        defect="V_Se",
        defect_supercell=(3, 3),
        npoints=5,
        unfold_npoints=3,
        mesh=4,
        defect_mesh=1,
        figures=False,
    )
    phonons = PhononsWorkflow(s, ph, progress=False).run()
    traj = str(md_run / "md" / "traj.extxyz")
    assert main(["vdos", traj, "--windows", "2", "--harmonic", str(ph), "-o", str(md_run / "vh")]) == 0
    res = VDOSWorkflow.load(md_run / "vh")
    assert res.harmonic_source.startswith(phonons.defect.dos.name)
    assert len(res.peaks) >= 4 and res.max_abs_peak_shift_thz < 0.3  # 60 K, 0.5 THz resolution
    assert (
        main(["dispersion", traj, "--window-ps", "1", "--harmonic", str(ph), "-o", str(md_run / "dh")]) == 0
    )
    disp = DispersionWorkflow.load(md_run / "dh")
    assert disp.supercell == [3, 3] and disp.labels == ["Γ", "M", "K", "Γ"]
    assert DispersionResult.read(disp.dispersion).harmonic_bands.shape[1] == 9  # WSe2: 3 atoms
    assert disp.median_abs_shift_thz is not None and disp.peaks_csv.is_file()
    # a folder of another stage is refused, naming it
    capsys.readouterr()
    rc = main(["vdos", traj, "--harmonic", str(md_run / "md"), "-o", str(md_run / "bad")])
    assert rc == 2 and "phonons" in capsys.readouterr().err and not (md_run / "bad").exists()


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("command", ["vdos", "dispersion"])
def test_missing_or_corrupt_trajectory(command, md_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([command, "missing.extxyz", "-o", "X"]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert "missing.extxyz" in line and "structure" not in line
    (tmp_path / "garbage.extxyz").write_text("this is not\na trajectory at all\n")
    for fmt in ([], ["--format", "extxyz"], ["--format", "lammps-dump"]):
        assert main([command, "garbage.extxyz", *fmt, "-o", "X"]) == 2
        (line,) = _error_lines(capsys.readouterr().err)
        assert "garbage.extxyz" in line
    # a trajectory outside an `mlff2d md` folder needs --structure
    (tmp_path / "t.extxyz").write_bytes((md_run / "md" / "traj.extxyz").read_bytes())
    assert main([command, "t.extxyz", "--dt-fs", "2", "-o", "X"]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert "no --structure" in line
    assert not (tmp_path / "X").exists()


@pytest.mark.parametrize(
    "name, cls, bad",
    [
        ("vdos", VDOSSettings, ["--smearing-thz", "-1"]),
        ("dispersion", DispersionSettings, ["--window-ps", "0"]),
    ],
)
def test_options_come_from_settings(name, cls, bad, tmp_path, capsys):
    import dataclasses

    from mlff2d.dynamics import commands

    command = getattr(commands, name)
    params = {p.name: p for p in command.params}
    assert set(params) == {f.name for f in dataclasses.fields(cls)} | {"output", "force"}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            assert params[f.name].default == f.default, f.name
    traj = tmp_path / "t.extxyz"
    traj.write_text("1\nTimestep=0\nW 0 0 0\n")
    assert main([name, str(traj), *bad, "-o", str(tmp_path / "X")]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: {bad[0]}:")
