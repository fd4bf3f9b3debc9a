"""CLI: ``mlff2d vdos`` and ``mlff2d dispersion`` (dynasor on LAMMPS trajectories)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import click

logger = logging.getLogger(__name__)

_TRAJ_OPTIONS = [
    click.argument("traj", type=click.Path(path_type=Path)),
    click.option(
        "--structure",
        type=click.Path(path_type=Path),
        default=None,
        help="The MD cell (extxyz): elements, masses, defect_center, supercell, in the "
        "trajectory's atom order. Default: structure.extxyz next to TRAJ (written by `mlff2d md`).",
    ),
    click.option(
        "--dt-fs",
        type=float,
        default=None,
        help="MD time step (fs); default: summary.yaml next to TRAJ or the dump's Time fields.",
    ),
    click.option(
        "--stride",
        type=int,
        default=None,
        help="MD steps between frames; default from the file's time steps.",
    ),
    click.option(
        "--format",
        "fmt",
        type=click.Choice(["extxyz", "lammps-dump"]),
        default=None,
        help="Trajectory format (default: detected).",
    ),
    click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Output folder."),
    click.option("--force", is_flag=True, help="Recompute even if the output folder is complete."),
    click.option(
        "--threads",
        type=int,
        default=0,
        help="Threads of dynasor's numba kernels (0: numba's default, all cores).",
    ),
]


def _traj_options(f):
    for opt in reversed(_TRAJ_OPTIONS):
        f = opt(f)
    return f


def _setup_dynasor(threads: int) -> None:
    """Keep dynasor's own INFO log off stdout unless -vv; set its numba threads."""
    import dynasor.logging_tools  # noqa: F401 - sets its level on import, so import first

    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("dynasor").setLevel(logging.WARNING)
    if threads > 0:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def _done(output: Path, product: str, force: bool) -> bool:
    if not force and (output / "summary.yaml").is_file() and (output / product).is_file():
        click.echo(f"{output} is complete (summary.yaml, {product}); use --force to recompute")
        return True
    return False


def _structure_path(traj: Path, structure: Path | None) -> Path:
    """``--structure``, or ``structure.extxyz`` that ``mlff2d md`` writes next to the trajectory."""
    from mlff2d.errors import InputError

    if structure is not None:
        return structure
    guess = traj.parent / "structure.extxyz"
    if guess.is_file():
        return guess
    raise InputError(f"no --structure given and no {guess}", "pass --structure cell.extxyz")


def _open(traj: Path, structure: Path, dt_fs: float | None, stride: int | None, fmt: str | None):
    from mlff2d.dynamics.trajectory import load_trajectory
    from mlff2d.structures import read_structure

    atoms = read_structure(structure)
    md = load_trajectory(traj, dt_fs, stride, fmt)
    click.echo(
        f"{traj.name}: {md.n_frames} frames every {md.frame_dt_fs:g} fs "
        f"(dt {md.dt_fs:g} fs × stride {md.stride}); Nyquist {md.nyquist_thz():.2f} THz, "
        f"resolution of the whole run {md.resolution_thz():.4f} THz"
    )
    return atoms, md


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        if not rows:
            fh.write("")
            return
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


@click.command("vdos")
@_traj_options
@click.option(
    "--windows",
    type=int,
    default=4,
    show_default=True,
    help="Time windows averaged (error band = standard error over windows).",
)
@click.option(
    "--shell-width",
    type=float,
    default=2.0,
    show_default=True,
    help="Radial shell width (Å) around defect_center: shells [k w, (k+1) w), as `mlff2d phonons`.",
)
@click.option(
    "--method",
    type=click.Choice(["auto", "sed", "psd"]),
    default="auto",
    show_default=True,
    help="dynasor route: spectral energy density or per-atom PSD (auto: sed up to 3000 atoms).",
)
@click.option(
    "--smearing-thz",
    type=float,
    default=0.05,
    show_default=True,
    help="Gaussian smearing (σ, THz) of the MD spectra; 0 for raw periodograms.",
)
@click.option(
    "--harmonic",
    type=click.Path(path_type=Path),
    default=None,
    help="Harmonic DOS to compare: an `mlff2d phonons` output folder (its defect DOS and "
    "shell PDOS), a dos.npz, phonopy total_dos.dat, or phonopy_params.yaml (Γ of the MD cell).",
)
@click.option(
    "--n-peaks", type=int, default=6, show_default=True, help="Harmonic DOS peaks compared with the MD VDOS."
)
def vdos(
    traj: Path,
    structure: Path | None,
    dt_fs: float | None,
    stride: int | None,
    fmt: str | None,
    output: Path,
    force: bool,
    threads: int,
    windows: int,
    shell_width: float,
    method: str,
    smearing_thz: float,
    harmonic: Path | None,
    n_peaks: int,
) -> None:
    """Compute the vibrational DOS from MD velocities (dynasor): total, elements, shells.

    Mass-weighted (m_i |v_i(ν)|²), normalised to 3 N states; averaged over time windows.

    Example: mlff2d vdos runs/md/traj.extxyz --structure cell.extxyz -o runs/vdos
    """
    import numpy as np

    from mlff2d.dynamics import plots
    from mlff2d.dynamics.vdos import (
        VDOSSettings,
        compare_peaks,
        compute_vdos,
        load_harmonic_dos,
        load_harmonic_shells,
    )
    from mlff2d.runinfo import RunRecord, write_summary

    if _done(output, "vdos.npz", force):
        return
    structure = _structure_path(traj, structure)
    _setup_dynasor(threads)
    settings = VDOSSettings(
        n_windows=windows, shell_width=shell_width, method=method, smearing_thz=smearing_thz
    )
    rec = RunRecord(
        "vdos",
        config={
            "traj": str(traj),
            "structure": str(structure),
            "dt_fs": dt_fs,
            "stride": stride,
            "format": fmt,
            "settings": settings,
            "harmonic": str(harmonic) if harmonic else None,
            "n_peaks": n_peaks,
        },
    )
    rec.inputs.update({"traj": str(traj), "structure": str(structure)})
    atoms, md = _open(traj, structure, dt_fs, stride, fmt)
    with rec.timer("vdos"):
        res = compute_vdos(md, atoms, settings)
    click.echo(
        f"VDOS ({res.method}): {res.n_windows} windows of {res.window_frames} frames, "
        f"resolution {res.resolution_thz:.4f} THz, T = {np.mean(res.window_temperatures):.1f} K"
    )
    rec.outputs["vdos"] = str(res.write(output / "vdos"))
    h, peaks = None, []
    if harmonic is not None:
        rec.inputs["harmonic"] = str(harmonic)
        sigma = float(np.hypot(res.smearing_thz, 0.376 * res.resolution_thz))
        with rec.timer("harmonic"):
            h = load_harmonic_dos(harmonic, res.frequencies, sigma, res.n_atoms)
        rec.outputs["harmonic_dos"] = str(h.write(output / "harmonic_dos"))
        peaks = compare_peaks(res, h, n_peaks)
        _write_csv(output / "vdos_peaks.csv", peaks)
        rec.outputs["peaks"] = str(output / "vdos_peaks.csv")
        for row in peaks:
            click.echo(
                f"  peak: harmonic {row['harmonic_thz']:.3f} THz, MD {row['md_thz']:.3f} THz"
                f" (shift {row['shift_thz']:+.3f})"
            )
    with rec.timer("plots"):
        figs = plots.plot_vdos_vs_harmonic(res, h, output, peaks)
        shells = load_harmonic_shells(harmonic) if harmonic is not None else None
        figs += plots.plot_vdos_radial(res, output, shells)
    rec.outputs.update({p.name: str(p) for p in figs})
    rec.results = {
        "method": res.method,
        "n_atoms": res.n_atoms,
        "n_windows": res.n_windows,
        "window_frames": res.window_frames,
        "nyquist_thz": res.nyquist_thz,
        "resolution_thz": res.resolution_thz,
        "smearing_thz": res.smearing_thz,
        "temperature_k": float(np.mean(res.window_temperatures)),
        "total_states": res.integral(res.total),
        "shell_sum_max_abs_dev": float(np.abs(res.shell_dos.sum(0) - res.total).max()),
        "shell_counts": res.shell_counts.tolist(),
        "mass_weighting": res.mass_weighting,
        "peaks": peaks,
        "max_abs_peak_shift_thz": max((abs(r["shift_thz"]) for r in peaks), default=None),
    }
    write_summary(output, rec)
    click.echo(f"wrote {output}/vdos.npz, vdos_vs_harmonic.png, vdos_radial.png")


@click.command("dispersion")
@_traj_options
@click.option(
    "--supercell",
    "supercell_",
    nargs=2,
    type=int,
    default=None,
    help="In-plane repetitions N M of the primitive cell (default: from the structure).",
)
@click.option(
    "--window-ps",
    type=float,
    default=5.0,
    show_default=True,
    help="Longest correlation time (ps): resolution ≈ 1/(2 window).",
)
@click.option("--window-step", type=int, default=0, help="Frames between windows (0: half a window).")
@click.option(
    "--damping-ps", type=float, default=0.0, help="σ of the Gaussian damping of C(q,t) (ps; 0: window/2.5)."
)
@click.option(
    "--harmonic",
    type=click.Path(path_type=Path),
    default=None,
    help="phonopy_params.yaml of the primitive cell: harmonic bands overlaid and shifts in the peak table.",
)
@click.option(
    "--max-peaks", type=int, default=3, show_default=True, help="Most peaks fitted per q-point and branch."
)
@click.option(
    "--backend",
    type=click.Choice(["numba", "torch", "cupy"]),
    default="numba",
    show_default=True,
    help="dynasor backend of the structure factors (torch, cupy: CUDA GPU, for large cells).",
)
def dispersion(
    traj: Path,
    structure: Path | None,
    dt_fs: float | None,
    stride: int | None,
    fmt: str | None,
    output: Path,
    force: bool,
    threads: int,
    supercell_: tuple[int, int] | None,
    window_ps: float,
    window_step: int,
    damping_ps: float,
    harmonic: Path | None,
    max_peaks: int,
    backend: str,
) -> None:
    """Compute current correlations C_L, C_T (dynasor) on the Γ–M–K–Γ q-points of the MD cell.

    Writes heat maps with the harmonic bands and a table of DHO peak centres and widths.

    Example: mlff2d dispersion runs/md/traj.extxyz --structure cell.extxyz -o runs/disp
    """
    from mlff2d.dynamics import plots
    from mlff2d.dynamics.dispersion import DispersionSettings, compute_dispersion
    from mlff2d.runinfo import RunRecord, write_summary

    if _done(output, "dispersion.npz", force):
        return
    structure = _structure_path(traj, structure)
    _setup_dynasor(threads)
    from dynasor import set_compute_config

    set_compute_config(backend=backend)
    settings = DispersionSettings(
        window_ps=window_ps, window_step=window_step, damping_ps=damping_ps, max_peaks=max_peaks
    )
    rec = RunRecord(
        "dispersion",
        config={
            "traj": str(traj),
            "structure": str(structure),
            "dt_fs": dt_fs,
            "stride": stride,
            "format": fmt,
            "supercell": list(supercell_) if supercell_ else None,
            "settings": settings,
            "harmonic": str(harmonic) if harmonic else None,
            "backend": backend,
        },
    )
    rec.inputs.update({"traj": str(traj), "structure": str(structure)})
    if harmonic:
        rec.inputs["harmonic"] = str(harmonic)
    atoms, md = _open(traj, structure, dt_fs, stride, fmt)
    with rec.timer("currents"):
        res = compute_dispersion(md, atoms, settings, tuple(supercell_) if supercell_ else None, harmonic)
    click.echo(
        f"{len(res.q_points)} q-points along {'-'.join(res.labels)}, window "
        f"{res.window_size} frames, resolution {res.resolution_thz:.4f} THz, "
        f"{len(res.peak_center)} peaks fitted"
    )
    rec.outputs["dispersion"] = str(res.write(output / "dispersion"))
    rows = res.peak_rows()
    _write_csv(output / "dispersion_peaks.csv", rows)
    rec.outputs["peaks"] = str(output / "dispersion_peaks.csv")
    with rec.timer("plots"):
        figs = plots.plot_dispersion(res, output)
    rec.outputs.update({p.name: str(p) for p in figs})
    import numpy as np

    shifts = res.peak_shift[np.isfinite(res.peak_shift)]
    rec.results = {
        "n_qpoints": len(res.q_points),
        "supercell": res.supercell,
        "labels": res.labels,
        "window_size": res.window_size,
        "resolution_thz": res.resolution_thz,
        "nyquist_thz": res.nyquist_thz,
        "damping_ps": res.damping_ps,
        "n_peaks": len(rows),
        "median_abs_shift_thz": float(np.median(np.abs(shifts))) if shifts.size else None,
        "median_fwhm_thz": float(np.nanmedian(res.peak_fwhm)) if rows else None,
    }
    write_summary(output, rec)
    click.echo(f"wrote {output}/dispersion.npz, dispersion_peaks.csv, dispersion_md.png")
