"""Typed results of the MD spectra.

:class:`VDOSResult`, :class:`HarmonicDOS` and :class:`DispersionResult` are the spectra: dataclasses
of arrays that round-trip through npz + JSON. Arrays go to ``<stem>.npz`` (read back with
``allow_pickle=False``), everything else (units, time step, labels, the mass weighting) to
``<stem>.json``. Frequencies are in THz, spectra in states/THz, distances in Å, wave vectors in
rad/Å (dynasor's convention, 2π included).

:class:`VDOSStageResult` and :class:`DispersionStageResult` are what the ``vdos`` and
``dispersion`` stages return (:mod:`mlff2d.dynamics.workflow`): their files and small results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlff2d.resultio import NpzJson
from mlff2d.workflow import StageResult


@dataclass
class VDOSResult(NpzJson):
    """Vibrational DOS from MD velocities, averaged over time windows.

    Every spectrum is the mass-weighted velocity power spectrum ``Σ_i m_i |v_i(ν)|²`` over
    its atoms, normalised so that the total integrates to ``3 n_atoms`` states: in the
    classical harmonic limit each mode carries ``k_B T`` and this equals the phonon DOS, and
    the partial spectra equal the atom-projected phonon DOS. Partial spectra (elements,
    shells) sum to the total exactly.

    Attributes
    ----------
    frequencies
        (n_f,) THz, from 0 to the Nyquist frequency.
    total, total_err
        (n_f,) states/THz: mean over windows and its standard error (std / sqrt(n_windows)).
    elements
        Element symbols of ``element_dos`` rows.
    element_dos, element_err
        (n_elements, n_f) states/THz.
    shell_edges
        (n_shells + 1,) Å: shell k holds atoms at distance ``[k w, (k+1) w)`` from
        ``defect_center`` (in-plane minimum image); the last shell is closed.
    shell_counts
        (n_shells,) atoms per shell.
    shell_dos, shell_err
        (n_shells, n_f) states/THz.
    window_temperatures
        (n_windows,) kinetic temperature of each window (K).
    defect_center
        (3,) Cartesian Å (zeros when the structure has none).
    dt_fs, stride, window_frames, n_windows, n_atoms
        MD time step (fs), steps between dumped frames, frames per window.
    resolution_thz, nyquist_thz, smearing_thz
        Frequency resolution of one window, Nyquist frequency, Gaussian smearing applied
        (standard deviation, THz; 0 = raw spectra).
    method
        ``"sed"`` (dynasor spectral energy density) or ``"psd"`` (dynasor PSD per atom).
    mass_weighting
        The weighting in words.
    """

    frequencies: NDArray[np.float64]
    total: NDArray[np.float64]
    total_err: NDArray[np.float64]
    element_dos: NDArray[np.float64]
    element_err: NDArray[np.float64]
    shell_edges: NDArray[np.float64]
    shell_counts: NDArray[np.int64]
    shell_dos: NDArray[np.float64]
    shell_err: NDArray[np.float64]
    window_temperatures: NDArray[np.float64]
    defect_center: NDArray[np.float64]
    elements: list[str] = field(default_factory=list)
    dt_fs: float = 1.0
    stride: int = 1
    window_frames: int = 0
    n_windows: int = 1
    n_atoms: int = 0
    resolution_thz: float = 0.0
    nyquist_thz: float = 0.0
    smearing_thz: float = 0.0
    method: str = "sed"
    mass_weighting: str = "m_i |v_i(nu)|^2, total normalised to 3 n_atoms states"

    def integral(self, spectrum: NDArray[np.float64]) -> float:
        """Integral of a spectrum over frequency (states)."""
        return float(np.trapezoid(spectrum, self.frequencies))


@dataclass
class HarmonicDOS(NpzJson):
    """A harmonic phonon DOS on a frequency grid, normalised to ``3 n_atoms`` states.

    Attributes
    ----------
    frequencies
        (n_f,) THz.
    dos
        (n_f,) states/THz.
    source
        Where it came from (file name and how it was evaluated).
    """

    frequencies: NDArray[np.float64]
    dos: NDArray[np.float64]
    source: str = ""


@dataclass
class DispersionResult(NpzJson):
    """Longitudinal and transverse current correlation spectra along Γ–M–K–Γ.

    Attributes
    ----------
    q_points
        (n_q, 3) Cartesian wave vectors (rad/Å, 2π included), commensurate with the MD cell.
    q_frac
        (n_q, 3) the same in fractional coordinates of the primitive reciprocal cell.
    distance
        (n_q,) distance along the path (rad/Å).
    labels, label_distance
        Special points and their path distances (rad/Å).
    frequencies
        (n_f,) THz.
    current_l, current_t
        (n_q, n_f) longitudinal / transverse current spectra C_L, C_T (dynasor units,
        Å²/fs² per atom per (rad/fs)); transverse averages both perpendicular directions
        (in-plane TA and out-of-plane ZA).
    harmonic_distance, harmonic_bands
        (n_h,), (n_h, n_bands): harmonic bands along the same path (THz); empty if none.
    harmonic_at_q
        (n_q, n_bands) harmonic frequencies at the MD q-points (THz); empty if none.
    peak_q_index, peak_branch, peak_center, peak_fwhm, peak_height, peak_center_err,
    peak_fwhm_err, peak_harmonic, peak_shift
        The peak table (one entry per fitted peak): q index, branch (0 = L, 1 = T), centre
        and full width at half maximum (THz) from a damped-harmonic-oscillator fit, height,
        one-sigma errors, nearest harmonic frequency (THz, NaN if none) and the shift
        centre − harmonic (THz).
    dt_fs, stride, window_size, n_frames, resolution_thz, nyquist_thz, damping_ps
        Time step (fs), stride, correlation window (frames), frames used, resolution and
        Nyquist frequency (THz), standard deviation of the Gaussian damping of C(q, t) (ps).
    supercell
        In-plane repetitions of the primitive cell in the MD cell.
    """

    q_points: NDArray[np.float64]
    q_frac: NDArray[np.float64]
    distance: NDArray[np.float64]
    label_distance: NDArray[np.float64]
    frequencies: NDArray[np.float64]
    current_l: NDArray[np.float64]
    current_t: NDArray[np.float64]
    harmonic_distance: NDArray[np.float64]
    harmonic_bands: NDArray[np.float64]
    harmonic_at_q: NDArray[np.float64]
    peak_q_index: NDArray[np.int64]
    peak_branch: NDArray[np.int64]
    peak_center: NDArray[np.float64]
    peak_fwhm: NDArray[np.float64]
    peak_height: NDArray[np.float64]
    peak_center_err: NDArray[np.float64]
    peak_fwhm_err: NDArray[np.float64]
    peak_harmonic: NDArray[np.float64]
    peak_shift: NDArray[np.float64]
    labels: list[str] = field(default_factory=list)
    supercell: list[int] = field(default_factory=lambda: [1, 1])
    dt_fs: float = 1.0
    stride: int = 1
    window_size: int = 0
    n_frames: int = 0
    resolution_thz: float = 0.0
    nyquist_thz: float = 0.0
    damping_ps: float = 0.0

    def peak_rows(self) -> list[dict[str, Any]]:
        """Return the peak table as rows of plain values (for CSV and summaries)."""
        rows = []
        for k in range(len(self.peak_center)):
            iq = int(self.peak_q_index[k])
            rows.append(
                {
                    "q_index": iq,
                    "q_frac": " ".join(f"{x:.4f}" for x in self.q_frac[iq]),
                    "branch": "L" if self.peak_branch[k] == 0 else "T",
                    "center_thz": float(self.peak_center[k]),
                    "center_err_thz": float(self.peak_center_err[k]),
                    "fwhm_thz": float(self.peak_fwhm[k]),
                    "fwhm_err_thz": float(self.peak_fwhm_err[k]),
                    "height": float(self.peak_height[k]),
                    "harmonic_thz": float(self.peak_harmonic[k]),
                    "shift_thz": float(self.peak_shift[k]),
                }
            )
        return rows


# -- the stages' results ------------------------------------------------------------------------


@dataclass
class VDOSStageResult(StageResult):
    """What ``mlff2d vdos`` produced.

    Attributes
    ----------
    vdos, vdos_json
        The spectra (:class:`mlff2d.dynamics.results.VDOSResult`): ``vdos.npz`` and ``vdos.json``.
    figures
        ``vdos_vs_harmonic`` and ``vdos_radial``, PNG and PDF, by file name.
    harmonic_dos, harmonic_dos_json
        The harmonic DOS on the MD grid (:class:`~mlff2d.dynamics.results.HarmonicDOS`), if
        ``--harmonic`` was given.
    peaks_csv
        ``vdos_peaks.csv``: the peak table, if ``--harmonic`` was given.
    method
        dynasor route used (``sed`` or ``psd``).
    n_atoms, n_frames
        Atoms of the cell, frames of the trajectory.
    dt_fs, stride, frame_dt_fs
        MD time step (fs), steps between frames, time between frames (fs).
    n_windows, window_frames
        Windows averaged and frames per window.
    nyquist_thz, resolution_thz, smearing_thz
        Nyquist frequency, resolution of one window, Gaussian smearing (THz).
    temperature_k
        Mean kinetic temperature of the windows (K).
    total_states, shell_sum_max_abs_dev
        Integral of the total VDOS (3 N states) and the largest deviation of the shell sum from
        the total (states/THz).
    shell_counts
        Atoms per radial shell.
    mass_weighting
        The weighting of the spectra in words.
    harmonic_source
        Where the harmonic DOS came from (file and evaluation), if any.
    peaks
        Rows ``{harmonic_thz, md_thz, shift_thz}`` (THz): the harmonic DOS peaks and the nearest
        MD VDOS peaks.
    max_abs_peak_shift_thz
        Largest ``|shift_thz|`` of the peak table (THz), ``None`` without one.
    """

    vdos: Path
    vdos_json: Path
    figures: dict[str, Path] = field(default_factory=dict)
    harmonic_dos: Path | None = None
    harmonic_dos_json: Path | None = None
    peaks_csv: Path | None = None
    method: str = ""
    n_atoms: int = 0
    n_frames: int = 0
    dt_fs: float = 0.0
    stride: int = 1
    frame_dt_fs: float = 0.0
    n_windows: int = 1
    window_frames: int = 0
    nyquist_thz: float = 0.0
    resolution_thz: float = 0.0
    smearing_thz: float = 0.0
    temperature_k: float = 0.0
    total_states: float = 0.0
    shell_sum_max_abs_dev: float = 0.0
    shell_counts: list[int] = field(default_factory=list)
    mass_weighting: str = ""
    harmonic_source: str | None = None
    peaks: list[dict[str, float | None]] = field(default_factory=list)
    max_abs_peak_shift_thz: float | None = None

    def describe(self) -> str:
        """A few lines for the terminal."""
        lines = [
            f"VDOS ({self.method}): {self.n_windows} windows of {self.window_frames} frames every "
            f"{self.frame_dt_fs:g} fs, resolution {self.resolution_thz:.4f} THz, Nyquist "
            f"{self.nyquist_thz:.2f} THz, T = {self.temperature_k:.1f} K"
        ]
        for row in self.peaks:
            md, shift = row["md_thz"], row["shift_thz"]
            lines.append(
                f"  peak: harmonic {row['harmonic_thz']:.3f} THz, MD "
                + ("none" if md is None or shift is None else f"{md:.3f} THz (shift {shift:+.3f})")
            )
        return "\n".join(lines)


@dataclass
class DispersionStageResult(StageResult):
    """What ``mlff2d dispersion`` produced.

    Attributes
    ----------
    dispersion, dispersion_json
        The spectra and peak table (:class:`mlff2d.dynamics.results.DispersionResult`):
        ``dispersion.npz`` and ``dispersion.json``.
    peaks_csv
        ``dispersion_peaks.csv``: DHO peak centres, widths and shifts from the harmonic bands.
    figures
        ``dispersion_md``, PNG and PDF, by file name.
    n_qpoints, labels, supercell
        Commensurate q-points on the path, its special points, the in-plane repetitions.
    n_frames, dt_fs, stride
        Frames of the trajectory, MD time step (fs), steps between frames.
    window_size, damping_ps
        Correlation window (frames) and the σ of its Gaussian damping (ps).
    resolution_thz, nyquist_thz
        Frequency resolution and Nyquist frequency (THz).
    n_peaks
        Peaks fitted.
    median_abs_shift_thz, median_fwhm_thz
        Median ``|centre − harmonic|`` and median width (THz), ``None`` where there are none.
    """

    dispersion: Path
    dispersion_json: Path
    peaks_csv: Path
    figures: dict[str, Path] = field(default_factory=dict)
    n_qpoints: int = 0
    labels: list[str] = field(default_factory=list)
    supercell: list[int] = field(default_factory=list)
    n_frames: int = 0
    dt_fs: float = 0.0
    stride: int = 1
    window_size: int = 0
    damping_ps: float = 0.0
    resolution_thz: float = 0.0
    nyquist_thz: float = 0.0
    n_peaks: int = 0
    median_abs_shift_thz: float | None = None
    median_fwhm_thz: float | None = None

    def describe(self) -> str:
        """One line for the terminal."""
        shift = (
            ""
            if self.median_abs_shift_thz is None
            else f", median |shift| {self.median_abs_shift_thz:.3f} THz"
        )
        return (
            f"{self.n_qpoints} q-points along {'-'.join(self.labels)}, window {self.window_size} frames, "
            f"resolution {self.resolution_thz:.4f} THz, {self.n_peaks} peaks fitted{shift}"
        )
