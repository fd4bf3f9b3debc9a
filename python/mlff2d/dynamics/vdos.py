"""Vibrational DOS from MD velocities with dynasor: total, per element, per radial shell.

The spectrum of atom i is its mass-weighted velocity power spectrum ``m_i |v_i(ν)|²``,
computed per time window by dynasor and summed over atoms, elements or shells around the
defect. Two dynasor routes give the same numbers (a test checks it):

``sed``
    :func:`dynasor.compute_spectral_energy_density` with the whole supercell as its own
    primitive cell, q = 0 and ``partial=True``: one basis atom per atom. dynasor maps the
    supercell onto the "primitive" cell with an O(n_atoms²) Python loop, fine up to a few
    thousand atoms.
``psd``
    :func:`dynasor.tools.acfs.psd_from_time_signal` of every mass-weighted velocity
    component, with the frames read by :class:`dynasor.Trajectory`: linear in n_atoms, for
    the 20,000-atom cells of a cluster run.

Each window's spectra are normalised so that the total integrates to 3 n_atoms states
(the kinetic temperature of the window is recorded); windows are averaged and their standard
error is the error band.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from mlff2d.dynamics.results import HarmonicDOS, VDOSResult
from mlff2d.dynamics.trajectory import (
    MDTrajectory,
    element_indices,
    inplane_distances,
    radial_shells,
    reference_structure,
)
from mlff2d.errors import InputError
from mlff2d.phonons.broadening import broadened_dos
from mlff2d.units import AMU_A2_PER_FS2_TO_EV, KB_EV, RAD_PER_FS_TO_THZ

if TYPE_CHECKING:
    from mlff2d.dynamics.workflow import VDOSSettings

logger = logging.getLogger(__name__)

#: Above this many atoms ``method="auto"`` uses ``psd`` instead of ``sed``.
SED_MAX_ATOMS = 3000

Spectra = tuple[NDArray[np.float64], NDArray[np.float64], float]


def _window_sed(traj: MDTrajectory, atoms: Atoms, start: int, stop: int) -> Spectra:
    """Per-atom spectra of frames [start, stop) with dynasor's spectral energy density.

    Returns (frequencies THz (n_f,), power (n_f, n_atoms) in eV/(rad/fs), kinetic energy eV).
    """
    from dynasor import compute_spectral_energy_density

    tr = traj.open(None, start, stop, properties="velocities")
    ref = atoms.copy()  # the file's cell (rounded in extxyz) to avoid a mismatch warning;
    ref.set_cell(tr.cell)  # at q = 0 the reference positions do not enter
    w, sed = compute_spectral_energy_density(
        tr, ref, ref, np.zeros((1, 3)), dt=traj.frame_dt_fs, partial=True, logging_interval=0
    )
    power = sed[0].sum(axis=-1)  # (n_f, n_atoms), summed over x, y, z
    kinetic = float(power.sum() * (w[1] - w[0]))
    return w * RAD_PER_FS_TO_THZ, power, kinetic


def _window_psd(traj: MDTrajectory, atoms: Atoms, start: int, stop: int) -> Spectra:
    """Per-atom spectra of frames [start, stop) with dynasor's PSD of each velocity component.

    Returns (frequencies THz (n_f,), power (n_f, n_atoms) in eV/(rad/fs), kinetic energy eV).
    """
    from dynasor.tools.acfs import psd_from_time_signal

    tr = traj.open(None, start, stop, properties="velocities")
    vel = np.array([f.get_velocities_as_array(tr.atomic_indices) for f in tr])  # Å/fs
    x = vel * np.sqrt(atoms.get_masses())[None, :, None]
    kinetic = 0.5 * float((x**2).sum(axis=(1, 2)).mean()) * AMU_A2_PER_FS2_TO_EV
    n_t, n_atoms, _ = x.shape
    w = None
    power = np.zeros((n_t // 2 + 1, n_atoms))
    for i in range(n_atoms):
        for a in range(3):
            w, p = psd_from_time_signal(x[:, i, a], dt=traj.frame_dt_fs)
            power[:, i] += p
    power *= kinetic / (power.sum() * (w[1] - w[0]))  # Parseval: ∫ power dω = kinetic energy
    return w * RAD_PER_FS_TO_THZ, power, kinetic


#: method name -> per-window spectra function.
VDOS_METHODS: dict[str, Callable[[MDTrajectory, Atoms, int, int], Spectra]] = {
    "sed": _window_sed,
    "psd": _window_psd,
}


def _groups(atoms: Atoms, shell_width: float) -> tuple[list[str], NDArray, NDArray, NDArray, NDArray]:
    """Elements, element index per atom, shell edges/index/counts, defect centre."""
    center = np.asarray(atoms.info.get("defect_center", np.zeros(3)), dtype=float).reshape(3)
    if "defect_center" not in atoms.info:
        logger.warning("the structure has no defect_center: shells are centred at the origin")
    elements = element_indices(atoms)
    el_index = np.zeros(len(atoms), dtype=np.int64)
    for k, idx in enumerate(elements.values()):
        el_index[idx] = k
    edges, sh_index = radial_shells(inplane_distances(atoms, center), shell_width)
    return list(elements), el_index, edges, sh_index, center


def _group_sum(power: NDArray[np.float64], index: NDArray[np.int64], n: int) -> NDArray[np.float64]:
    """Sum (n_f, n_atoms) spectra into (n, n_f) groups by ``index``."""
    out = np.zeros((n, power.shape[0]))
    np.add.at(out, index, power.T)
    return out


def _mean_err(stack: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean and standard error over axis 0."""
    if stack.shape[0] < 2:
        return stack.mean(axis=0), np.zeros_like(stack[0])
    return stack.mean(axis=0), stack.std(axis=0, ddof=1) / np.sqrt(stack.shape[0])


def compute_vdos(traj: MDTrajectory, atoms: Atoms, settings: VDOSSettings) -> VDOSResult:
    """VDOS of a trajectory: total, per element and per radial shell, averaged over windows.

    Parameters
    ----------
    traj
        The trajectory (velocities in the file; atoms in the order of ``atoms``).
    atoms
        Reference structure: masses, elements and ``info["defect_center"]`` (Å).
    settings
        The stage settings; this uses ``windows``, ``shell_width`` (Å), ``method`` and
        ``smearing_thz`` (THz).

    Raises
    ------
    InputError
        If the structure does not match or the windows are too short.
    """
    s = settings
    atoms = reference_structure(traj, atoms)
    method = s.method if s.method != "auto" else ("sed" if len(atoms) <= SED_MAX_ATOMS else "psd")
    n_win = s.windows
    wf = traj.n_frames // n_win
    if wf < 8:
        raise InputError(
            f"{n_win} windows of {traj.n_frames} frames are too short", "use fewer --windows or a longer run"
        )
    logger.info(
        "VDOS (%s): %d windows of %d frames; Nyquist %.2f THz, resolution %.3f THz",
        method,
        n_win,
        wf,
        traj.nyquist_thz(),
        traj.resolution_thz(wf),
    )
    names, el_index, edges, sh_index, center = _groups(atoms, s.shell_width)
    n_at = len(atoms)
    tot, els, shs, temps = [], [], [], []
    freqs = None
    for k in _progress(range(n_win), f"VDOS windows ({method})"):
        freqs, power, kinetic = VDOS_METHODS[method](traj, atoms, k * wf, (k + 1) * wf)
        dnu = freqs[1] - freqs[0]
        power = power * (3 * n_at / (power.sum() * dnu))  # states/THz, total = 3 n_atoms
        if s.smearing_thz > 0:
            power = gaussian_filter1d(power, s.smearing_thz / dnu, axis=0, mode="reflect")
        temps.append(2.0 * kinetic / (3 * n_at * KB_EV))
        tot.append(power.sum(axis=1))
        els.append(_group_sum(power, el_index, len(names)))
        shs.append(_group_sum(power, sh_index, len(edges) - 1))
    total, total_err = _mean_err(np.array(tot))
    el_dos, el_err = _mean_err(np.array(els))
    sh_dos, sh_err = _mean_err(np.array(shs))
    return VDOSResult(
        frequencies=freqs,
        total=total,
        total_err=total_err,
        element_dos=el_dos,
        element_err=el_err,
        shell_edges=edges,
        shell_counts=np.bincount(sh_index, minlength=len(edges) - 1).astype(np.int64),
        shell_dos=sh_dos,
        shell_err=sh_err,
        window_temperatures=np.array(temps),
        defect_center=center,
        elements=names,
        dt_fs=traj.dt_fs,
        stride=traj.stride,
        window_frames=wf,
        n_windows=n_win,
        n_atoms=n_at,
        resolution_thz=traj.resolution_thz(wf),
        nyquist_thz=traj.nyquist_thz(),
        smearing_thz=float(s.smearing_thz),
        method=method,
    )


def _progress(it, description: str):
    """Wrap ``it`` in a rich progress bar (plain iteration when rich is missing)."""
    try:
        from rich.progress import track
    except ImportError:  # pragma: no cover
        return it
    return track(it, description=description, transient=True)


# -- harmonic reference -----------------------------------------------------------------------


def _harmonic_from_dat(path: Path, grid: NDArray, sigma: float, n_atoms: int) -> HarmonicDOS:
    data = np.loadtxt(path, comments="#")
    dos = np.interp(grid, data[:, 0], data[:, 1], left=0.0, right=0.0)
    return HarmonicDOS(grid, dos, f"{path.name} (tabulated DOS, interpolated)")


def _harmonic_from_npz(path: Path, grid: NDArray, sigma: float, n_atoms: int) -> HarmonicDOS:
    """Read a DOS ``.npz``: :class:`HarmonicDOS` (``dos``) or ``mlff2d phonons``' (``total``)."""
    with np.load(path, allow_pickle=False) as data:
        key = next((k for k in ("dos", "total") if k in data.files), None)
        if "frequencies" not in data.files or key is None:
            raise InputError(f"{path} holds no frequencies/dos arrays", "give a DOS written by mlff2d")
        f, dos = data["frequencies"], data[key]
    return HarmonicDOS(grid, np.interp(grid, f, dos, left=0.0, right=0.0), f"{path.name} (tabulated DOS)")


def _harmonic_from_phonopy(path: Path, grid: NDArray, sigma: float, n_atoms: int) -> HarmonicDOS:
    """Phonopy params file: Γ only for a cell of n_atoms, else the commensurate mesh."""
    import phonopy

    ph = phonopy.load(str(path), produce_fc=True, log_level=0)
    n_unit = len(ph.unitcell)
    if n_atoms % n_unit:
        raise InputError(f"{path.name}: a unit cell of {n_unit} atoms cannot tile {n_atoms} atoms")
    rep = int(round(np.sqrt(n_atoms // n_unit)))
    mesh = [1, 1, 1] if n_unit == n_atoms else [rep, rep, 1]
    ph.run_mesh(mesh, is_gamma_center=True, with_eigenvectors=False)
    dos = broadened_dos(
        grid, ph.mesh.frequencies, sigma, np.repeat(ph.mesh.weights, ph.mesh.frequencies.shape[1])
    )
    return HarmonicDOS(grid, dos, f"{path.name} (phonopy, mesh {mesh}, sigma {sigma:.3f} THz)")


#: file suffix -> harmonic DOS reader.
HARMONIC_READERS: dict[str, Callable[[Path, NDArray, float, int], HarmonicDOS]] = {
    ".dat": _harmonic_from_dat,
    ".txt": _harmonic_from_dat,
    ".npz": _harmonic_from_npz,
    ".yaml": _harmonic_from_phonopy,
    ".yml": _harmonic_from_phonopy,
}


def load_harmonic_dos(path: str | Path, grid: NDArray[np.float64], sigma: float, n_atoms: int) -> HarmonicDOS:
    """Harmonic DOS on ``grid`` (THz), normalised to ``3 n_atoms`` states.

    ``path`` is a phonopy ``total_dos.dat``, a DOS ``.npz`` (:class:`HarmonicDOS` or the
    ``dos.npz`` of ``mlff2d phonons``), or a phonopy params ``.yaml`` (forces or force constants)
    evaluated at Γ of the MD cell (or the commensurate mesh of a primitive cell) with Gaussian
    ``sigma`` (THz).

    Raises
    ------
    InputError
        If the file is missing or of a kind not listed in :data:`HARMONIC_READERS`.
    """
    p = Path(path)
    reader = HARMONIC_READERS.get(p.suffix.lower())
    if reader is None:
        raise InputError(
            f"cannot read a harmonic DOS from {p.name}", f"use one of {sorted(HARMONIC_READERS)}"
        )
    if not p.is_file():
        raise InputError(f"harmonic DOS file not found: {p}")
    h = reader(p, grid, sigma, n_atoms)
    integral = float(np.trapezoid(h.dos, h.frequencies))
    if integral > 0:
        h.dos = h.dos * (3 * n_atoms / integral)
    return h


def load_harmonic_shells(path: str | Path) -> dict[str, NDArray[np.float64]] | None:
    """Read a harmonic local PDOS per radial shell (``local_pdos_defect.npz`` of ``mlff2d phonons``).

    Returns ``{"frequencies" (n_f,) THz, "edges" (n_shells + 1,) Å, "pdos" (n_shells, n_f)
    states/THz, "counts" (n_shells,)}``, or None if the file holds no such arrays.
    """
    with np.load(Path(path), allow_pickle=False) as data:
        if not {"frequencies", "edges", "pdos", "counts"} <= set(data.files):
            return None
        return {k: data[k] for k in ("frequencies", "edges", "pdos", "counts")}


# -- peaks ---------------------------------------------------------------------------------------


def spectrum_peaks(
    freqs: NDArray[np.float64],
    spectrum: NDArray[np.float64],
    n_peaks: int = 6,
    min_freq: float = 0.3,
    rel_prominence: float = 0.05,
) -> NDArray[np.float64]:
    """Find the ``n_peaks`` most prominent peaks (THz, sorted by frequency), parabola-refined.

    Peaks below ``min_freq`` (THz) or with a prominence under ``rel_prominence`` of the
    maximum are ignored.
    """
    idx, props = find_peaks(spectrum, prominence=rel_prominence * float(spectrum.max()))
    keep = freqs[idx] >= min_freq
    idx, prom = idx[keep], props["prominences"][keep]
    idx = idx[np.argsort(prom)[::-1][:n_peaks]]
    out = []
    dnu = freqs[1] - freqs[0]
    for i in idx:
        if 0 < i < len(spectrum) - 1:
            y0, y1, y2 = spectrum[i - 1 : i + 2]
            den = y0 - 2 * y1 + y2
            out.append(freqs[i] + (0.5 * (y0 - y2) / den * dnu if den != 0 else 0.0))
        else:
            out.append(freqs[i])
    return np.sort(np.array(out, dtype=float))


def compare_peaks(vdos: VDOSResult, harmonic: HarmonicDOS, n_peaks: int) -> list[dict[str, float | None]]:
    """Match the harmonic DOS's top peaks to the nearest MD VDOS peaks.

    Returns rows ``{"harmonic_thz", "md_thz", "shift_thz"}`` (THz); ``md_thz`` is the nearest of
    the MD's 3 ``n_peaks`` most prominent peaks (None, as the shift, if the MD VDOS has none).
    """
    h_peaks = spectrum_peaks(harmonic.frequencies, harmonic.dos, n_peaks)
    md_peaks = spectrum_peaks(vdos.frequencies, vdos.total, 3 * n_peaks)
    rows: list[dict[str, float | None]] = []
    for f in h_peaks:
        if not md_peaks.size:
            rows.append({"harmonic_thz": round(float(f), 4), "md_thz": None, "shift_thz": None})
            continue
        m = float(md_peaks[int(np.argmin(np.abs(md_peaks - f)))])
        rows.append(
            {"harmonic_thz": round(float(f), 4), "md_thz": round(m, 4), "shift_thz": round(m - float(f), 4)}
        )
    return rows
