"""Typed results of the MD spectra: dataclasses of arrays that round-trip through npz + JSON.

Arrays go to ``<stem>.npz`` (read back with ``allow_pickle=False``), everything else (units,
time step, labels, the mass weighting) to ``<stem>.json``. Frequencies are in THz, spectra in
states/THz, distances in Å, wave vectors in rad/Å (dynasor's convention, 2π included).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlff2d.resultio import NpzJson


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
