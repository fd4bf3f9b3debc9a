"""The MD-spectra stages: ``mlff2d vdos`` and ``mlff2d dispersion`` as workflows.

:class:`VDOSSettings` and :class:`DispersionSettings` hold every option of the two commands (the
single source of their defaults; :func:`mlff2d.dynamics.vdos.compute_vdos` and
:func:`mlff2d.dynamics.dispersion.compute_dispersion` read them directly).
:class:`VDOSWorkflow` and :class:`DispersionWorkflow` run dynasor on a LAMMPS trajectory into one
output folder and return a :class:`VDOSStageResult` / :class:`DispersionStageResult`.

When the trajectory is the one of an ``mlff2d md`` output folder, the MD cell and the sampling
(time step, dump interval) come from that stage's result (:meth:`MDWorkflow.load`); a
``--harmonic`` folder of ``mlff2d phonons`` is read through :meth:`PhononsWorkflow.load`.

This module imports no dynasor, phonopy or matplotlib at the top: the commands build their
options from it.

Example
-------
>>> from mlff2d.dynamics.workflow import VDOSSettings, VDOSWorkflow  # doctest: +SKIP
>>> res = VDOSWorkflow(VDOSSettings(trajectory="runs/md/traj.extxyz"), "runs/vdos").run()  # doctest: +SKIP
>>> res.vdos, res.resolution_thz  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from mlff2d.dynamics.results import DispersionStageResult, VDOSStageResult
from mlff2d.errors import InputError
from mlff2d.settings import Settings, setting
from mlff2d.workflow import StageResult, Workflow

if TYPE_CHECKING:
    from ase import Atoms

    from mlff2d.dynamics.trajectory import MDTrajectory
    from mlff2d.runinfo import RunRecord

logger = logging.getLogger(__name__)

#: settings that change how fast a spectrum is computed, not the spectrum (not in the fingerprint).
_SPEED_ONLY = ("threads", "backend")


# -- settings -------------------------------------------------------------------------------------


@dataclass
class TrajectorySettings(Settings):
    """What both MD-spectra stages read: the trajectory, its cell and its sampling.

    Attributes
    ----------
    trajectory
        LAMMPS trajectory with velocities (extxyz or custom dump, ``metal`` units).
    structure
        The MD cell (extxyz) in the trajectory's atom order; default: the cell of the ``mlff2d md``
        folder that holds the trajectory.
    dt_fs
        MD time step (fs); default from that ``mlff2d md`` folder, else the dump's ``Time`` fields.
    stride
        MD steps between frames; default from that folder, else the dump's time steps.
    format
        ``extxyz`` or ``lammps-dump`` (default: detected from the first line).
    threads
        Threads of dynasor's numba kernels (0: numba's default, all cores).
    """

    trajectory: Path = setting(
        help="LAMMPS trajectory with velocities (extxyz or custom dump).", argument=True
    )
    structure: Path | None = setting(
        None,
        "The MD cell (extxyz): elements, masses, defect_center, supercell, in the trajectory's atom "
        "order. Default: the cell of the `mlff2d md` folder holding TRAJECTORY.",
    )
    dt_fs: float | None = setting(
        None,
        "MD time step; default: the `mlff2d md` folder holding TRAJECTORY, or the dump's Time fields.",
        unit="fs",
        gt=0,
    )
    stride: int | None = setting(
        None, "MD steps between frames; default from the md folder or the file.", ge=1
    )
    format: Literal["extxyz", "lammps-dump"] | None = setting(None, "Trajectory format (default: detected).")
    threads: int = setting(0, "Threads of dynasor's numba kernels (0: numba's default, all cores).", ge=0)


@dataclass
class VDOSSettings(TrajectorySettings):
    """Settings of ``mlff2d vdos`` (recipe keys = option names with ``_``).

    Attributes
    ----------
    windows
        Time windows averaged (the error band is their standard error).
    shell_width
        Radial shell width (Å) around ``defect_center``: shells ``[k w, (k+1) w)``.
    method
        dynasor route: ``sed`` (spectral energy density), ``psd`` (per-atom PSD) or ``auto``
        (``sed`` up to :data:`mlff2d.dynamics.vdos.SED_MAX_ATOMS` atoms).
    smearing_thz
        Gaussian smearing (standard deviation, THz) of each window's spectra; 0 keeps the raw
        periodograms.
    harmonic
        Harmonic DOS compared with the VDOS: an ``mlff2d phonons`` output folder (its defect DOS
        and shell PDOS, else its pristine DOS), a ``dos.npz``, a phonopy ``total_dos.dat``, or a
        ``phonopy_params.yaml`` (evaluated at Γ of the MD cell).
    n_peaks
        Harmonic DOS peaks compared with the MD VDOS.
    """

    windows: int = setting(4, "Time windows averaged (error band = standard error over windows).", ge=1)
    shell_width: float = setting(
        2.0,
        "Radial shell width around defect_center: shells [k w, (k+1) w), as `mlff2d phonons`.",
        unit="Å",
        gt=0,
    )
    method: Literal["auto", "sed", "psd"] = setting(
        "auto", "dynasor route: spectral energy density or per-atom PSD (auto: sed up to 3000 atoms)."
    )
    smearing_thz: float = setting(
        0.05, "Gaussian smearing (σ) of the MD spectra; 0 for raw periodograms.", unit="THz", ge=0
    )
    harmonic: Path | None = setting(
        None,
        "Harmonic DOS to compare: an `mlff2d phonons` output folder (its defect DOS and shell PDOS), "
        "a dos.npz, phonopy total_dos.dat, or phonopy_params.yaml (Γ of the MD cell).",
    )
    n_peaks: int = setting(6, "Harmonic DOS peaks compared with the MD VDOS.", ge=1)


@dataclass
class DispersionSettings(TrajectorySettings):
    """Settings of ``mlff2d dispersion`` (recipe keys = option names with ``_``).

    Attributes
    ----------
    supercell
        In-plane repetitions N M of the primitive cell in the MD cell (default: the structure's
        ``supercell`` info).
    window_ps
        Longest time lag of the correlation functions (ps): resolution ≈ 1 / (2 window).
    window_step
        Frames between the starts of consecutive windows (0: half a window).
    damping_ps
        Standard deviation of the Gaussian damping of C(q, t) (ps; 0: window / 2.5).
    harmonic
        Harmonic bands to overlay: ``phonopy_params.yaml`` of the primitive cell, or an
        ``mlff2d phonons`` output folder (its pristine ``phonopy_params``).
    max_peaks
        Most peaks fitted per q-point and branch.
    min_rel_height
        Peaks lower than this fraction of a spectrum's maximum are not fitted.
    backend
        dynasor backend of the structure factors (``torch``, ``cupy``: CUDA GPU, for large cells).
    """

    supercell: tuple[int, int] | None = setting(
        None, "In-plane repetitions N M of the primitive cell (default: from the structure).", ge=1
    )
    window_ps: float = setting(5.0, "Longest correlation time: resolution ≈ 1/(2 window).", unit="ps", gt=0)
    window_step: int = setting(0, "Frames between windows (0: half a window).", ge=0)
    damping_ps: float = setting(0.0, "σ of the Gaussian damping of C(q,t) (0: window/2.5).", unit="ps", ge=0)
    harmonic: Path | None = setting(
        None,
        "phonopy_params.yaml of the primitive cell, or an `mlff2d phonons` output folder: harmonic "
        "bands overlaid and shifts in the peak table.",
    )
    max_peaks: int = setting(3, "Most peaks fitted per q-point and branch.", ge=1)
    min_rel_height: float = setting(
        0.1, "Peaks lower than this fraction of a spectrum's maximum are not fitted.", ge=0, le=1
    )
    backend: Literal["numba", "torch", "cupy"] = setting(
        "numba", "dynasor backend of the structure factors (torch, cupy: CUDA GPU, for large cells)."
    )


# -- workflows ------------------------------------------------------------------------------------


class _TrajectoryWorkflow(Workflow):
    """What both stages share: the trajectory, its MD stage, the cell, dynasor's set-up."""

    settings: TrajectorySettings

    def __init__(self, settings: TrajectorySettings, outdir: str | Path, **kwargs: Any) -> None:
        super().__init__(settings, outdir, **kwargs)
        self._md_result: StageResult | None = None
        self._md_looked_up = False
        self._traj: MDTrajectory | None = None

    def md_stage(self) -> Any:
        """The ``mlff2d md`` result whose trajectory this is, or ``None`` (cached)."""
        if not self._md_looked_up:
            from mlff2d.lammps.workflow import MDWorkflow

            self._md_looked_up = True
            traj = self.settings.trajectory
            try:
                res = MDWorkflow.load(traj.parent)
            except InputError:
                return None
            if res.trajectory is not None and res.trajectory.resolve() == traj.resolve():
                self._md_result = res
        return self._md_result

    def fingerprint(self) -> dict[str, Any]:
        """The base's fingerprint without the settings that change the speed, not the result."""
        fp = super().fingerprint()
        for key in _SPEED_ONLY:
            fp["settings"].pop(key, None)
        return fp

    def inputs(self) -> dict[str, Path]:
        """The settings' files; the MD stage's record instead of hashing its (large) trajectory."""
        out = super().inputs()
        md = self.md_stage()
        if md is not None:
            out.pop("trajectory", None)
            out["md"] = Path(md.outdir)
        return out

    def structure_path(self) -> Path:
        """``structure``, or the MD cell of the ``mlff2d md`` folder holding the trajectory.

        Raises
        ------
        InputError
            If neither is there.
        """
        s = self.settings
        if s.structure is not None:
            if not s.structure.is_file():
                raise InputError(f"--structure: file {s.structure} not found", "give the MD cell (extxyz)")
            return s.structure
        md = self.md_stage()
        if md is None:
            raise InputError(
                f"no --structure given and {s.trajectory.parent} is not the `mlff2d md` folder of "
                f"{s.trajectory.name}",
                "pass --structure cell.extxyz (the cell the MD started from)",
            )
        return Path(md.structure)

    def trajectory(self) -> MDTrajectory:
        """The trajectory with its sampling (checked and cached).

        Raises
        ------
        InputError
            If the file is missing, unreadable, too short, or its time step is unknown.
        """
        if self._traj is None:
            from mlff2d.dynamics.trajectory import load_trajectory

            s, md = self.settings, self.md_stage()
            dt_fs = s.dt_fs if s.dt_fs is not None or md is None else md.dt_fs
            stride = s.stride if s.stride is not None or md is None else md.dump_every
            self._traj = load_trajectory(s.trajectory, dt_fs, stride, s.format)
        return self._traj

    def check(self) -> None:
        """Check the trajectory (exists, is one, is readable, sampling known) and the cell."""
        self.trajectory()
        self.structure_path()

    def open(self) -> tuple[Atoms, MDTrajectory]:
        """The MD cell and the trajectory; sets up dynasor's logging and threads."""
        from mlff2d.structures import read_structure

        _setup_dynasor(self.settings.threads)
        return read_structure(self.structure_path()), self.trajectory()


class VDOSWorkflow(_TrajectoryWorkflow):
    """``mlff2d vdos``: the vibrational DOS from MD velocities (dynasor), total, elements, shells.

    Mass-weighted (``m_i |v_i(ν)|²``), normalised to 3 N states, averaged over time windows;
    compared with a harmonic DOS if ``harmonic`` is given.
    """

    command: ClassVar[str] = "vdos"
    Settings: ClassVar[type[VDOSSettings]] = VDOSSettings
    Result: ClassVar[type[VDOSStageResult]] = VDOSStageResult
    settings: VDOSSettings

    def harmonic_files(self) -> tuple[Path, Path | None] | None:
        """The harmonic DOS file and the shell PDOS file (``None`` if not known); ``None`` without one.

        From an ``mlff2d phonons`` folder: the defect cell's DOS and shells, else the pristine DOS.
        """
        h = self.settings.harmonic
        if h is None:
            return None
        ph = phonons_result(h)
        if ph is None:
            return h, None
        if ph.defect is not None:
            return Path(ph.defect.dos), Path(ph.defect.shells)
        return Path(ph.pristine.dos), None

    def check(self) -> None:
        """Check the trajectory and cell, and that the harmonic DOS can be read.

        Raises
        ------
        InputError
            If a file is missing or unreadable, or ``harmonic`` is of an unknown kind.
        """
        from mlff2d.dynamics.vdos import HARMONIC_READERS

        super().check()
        files = self.harmonic_files()
        if files is not None and files[0].suffix.lower() not in HARMONIC_READERS:
            raise InputError(
                f"--harmonic: cannot read a harmonic DOS from {files[0].name}",
                f"give an `mlff2d phonons` folder or a file ending in {', '.join(sorted(HARMONIC_READERS))}",
            )

    def _run(self, record: RunRecord) -> VDOSStageResult:
        import numpy as np

        from mlff2d.dynamics import plots
        from mlff2d.dynamics.vdos import compute_vdos

        atoms, md = self.open()
        with record.timer("vdos"):
            res = compute_vdos(md, atoms, self.settings)
        out = self.outdir
        vdos = res.write(out / "vdos")
        result = VDOSStageResult(
            outdir=out,
            vdos=vdos,
            vdos_json=vdos.with_suffix(".json"),
            method=res.method,
            n_atoms=res.n_atoms,
            n_frames=md.n_frames,
            dt_fs=res.dt_fs,
            stride=res.stride,
            frame_dt_fs=md.frame_dt_fs,
            n_windows=res.n_windows,
            window_frames=res.window_frames,
            nyquist_thz=res.nyquist_thz,
            resolution_thz=res.resolution_thz,
            smearing_thz=res.smearing_thz,
            temperature_k=float(np.mean(res.window_temperatures)),
            total_states=res.integral(res.total),
            shell_sum_max_abs_dev=float(np.abs(res.shell_dos.sum(0) - res.total).max()),
            shell_counts=[int(c) for c in res.shell_counts],
            mass_weighting=res.mass_weighting,
        )
        harmonic, shells = self._harmonic(res, result, record)
        with record.timer("plots"):
            figs = plots.plot_vdos_vs_harmonic(res, harmonic, out, result.peaks)
            figs += plots.plot_vdos_radial(res, out, shells)
        result.figures = {p.name: p for p in figs}
        return result

    def _harmonic(self, res: Any, result: VDOSStageResult, record: RunRecord) -> tuple[Any, Any]:
        """Read the harmonic DOS on the VDOS grid, compare peaks; fill ``result``.

        Returns the :class:`HarmonicDOS` and the harmonic shell PDOS (each ``None`` if absent).
        """
        import numpy as np

        from mlff2d.dynamics.vdos import compare_peaks, load_harmonic_dos, load_harmonic_shells

        files = self.harmonic_files()
        if files is None:
            return None, None
        dos_file, shells_file = files
        sigma = float(np.hypot(res.smearing_thz, 0.376 * res.resolution_thz))
        with record.timer("harmonic"):
            h = load_harmonic_dos(dos_file, res.frequencies, sigma, res.n_atoms)
        result.harmonic_dos = h.write(self.outdir / "harmonic_dos")
        result.harmonic_dos_json = result.harmonic_dos.with_suffix(".json")
        result.harmonic_source = h.source
        result.peaks = compare_peaks(res, h, self.settings.n_peaks)
        result.peaks_csv = write_csv(self.outdir / "vdos_peaks.csv", result.peaks)
        shifts = [abs(r["shift_thz"]) for r in result.peaks if r["shift_thz"] is not None]
        result.max_abs_peak_shift_thz = max(shifts, default=None)
        shells = load_harmonic_shells(shells_file) if shells_file is not None else None
        return h, shells


class DispersionWorkflow(_TrajectoryWorkflow):
    """``mlff2d dispersion``: current correlations C_L, C_T (dynasor) on the Γ–M–K–Γ q-points.

    The q-points are those of the path commensurate with the MD cell; peaks are fitted with a
    damped harmonic oscillator and compared with the harmonic bands if ``harmonic`` is given.
    """

    command: ClassVar[str] = "dispersion"
    Settings: ClassVar[type[DispersionSettings]] = DispersionSettings
    Result: ClassVar[type[DispersionStageResult]] = DispersionStageResult
    settings: DispersionSettings

    def harmonic_file(self) -> Path | None:
        """The phonopy params file of the primitive cell (an ``mlff2d phonons`` folder's pristine one)."""
        ph = phonons_result(self.settings.harmonic)
        return Path(ph.pristine.phonopy_params) if ph is not None else self.settings.harmonic

    def check(self) -> None:
        """Check the trajectory, the cell and the harmonic phonon file."""
        super().check()
        h = self.harmonic_file()
        if h is not None and not h.is_file():
            raise InputError(f"--harmonic: file {h} not found", "give the phonopy_params.yaml")

    def _run(self, record: RunRecord) -> DispersionStageResult:
        import numpy as np
        from dynasor import set_compute_config

        from mlff2d.dynamics import plots
        from mlff2d.dynamics.dispersion import compute_dispersion

        atoms, md = self.open()
        set_compute_config(backend=self.settings.backend)
        with record.timer("currents"):
            res = compute_dispersion(md, atoms, self.settings, self.harmonic_file())
        out = self.outdir
        data = res.write(out / "dispersion")
        rows = res.peak_rows()
        with record.timer("plots"):
            figs = plots.plot_dispersion(res, out)
        shifts = np.abs(res.peak_shift[np.isfinite(res.peak_shift)])
        fwhm = res.peak_fwhm[np.isfinite(res.peak_fwhm)]
        return DispersionStageResult(
            outdir=out,
            dispersion=data,
            dispersion_json=data.with_suffix(".json"),
            peaks_csv=write_csv(out / "dispersion_peaks.csv", rows),
            figures={p.name: p for p in figs},
            n_qpoints=len(res.q_points),
            labels=list(res.labels),
            supercell=[int(n) for n in res.supercell],
            n_frames=md.n_frames,
            dt_fs=res.dt_fs,
            stride=res.stride,
            window_size=res.window_size,
            damping_ps=res.damping_ps,
            resolution_thz=res.resolution_thz,
            nyquist_thz=res.nyquist_thz,
            n_peaks=len(rows),
            median_abs_shift_thz=float(np.median(shifts)) if shifts.size else None,
            median_fwhm_thz=float(np.median(fwhm)) if fwhm.size else None,
        )


# -- helpers --------------------------------------------------------------------------------------


def phonons_result(harmonic: Path | None) -> Any:
    """The ``mlff2d phonons`` result of a ``--harmonic`` folder; ``None`` for a file or no harmonic.

    Raises
    ------
    InputError
        If ``harmonic`` does not exist, or is a folder without a finished ``mlff2d phonons`` run.
    """
    if harmonic is None or harmonic.is_file():
        return None
    if not harmonic.exists():
        raise InputError(
            f"--harmonic: {harmonic} not found", "give an `mlff2d phonons` folder or a phonon file"
        )
    from mlff2d.phonons.stage import PhononsWorkflow

    return PhononsWorkflow.load(harmonic)


def _setup_dynasor(threads: int) -> None:
    """Keep dynasor's (and MDAnalysis') import-time log quiet unless -vv; set numba's threads (0: all)."""
    quiet = logging.getLogger().level > logging.DEBUG
    if quiet:  # MDAnalysis, imported by dynasor, warns about netCDF4 (AMBER files, not used here)
        logging.getLogger("MDAnalysis.coordinates.AMBER").setLevel(logging.ERROR)
    import dynasor.logging_tools  # noqa: F401 - sets its level on import, so import first

    if quiet:
        logging.getLogger("dynasor").setLevel(logging.WARNING)
    if threads > 0:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write ``rows`` (dicts with the same keys) as CSV (``None`` as an empty cell); return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        if rows:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return path
