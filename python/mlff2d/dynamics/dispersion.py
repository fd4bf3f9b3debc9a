"""Phonon dispersion at finite temperature: dynasor current correlations along Γ–M–K–Γ.

The q-points are those of the primitive hexagonal path Γ–M–K–Γ of :mod:`mlff2d.structures.bz`
(M = (1/2, 0, 0), K = (1/3, 1/3, 0)) that are commensurate with the MD supercell
(:func:`dynasor.qpoints.get_supercell_qpoints_along_path`). dynasor's
:func:`~dynasor.compute_dynamic_structure_factors` with ``calculate_currents=True`` gives the
longitudinal and transverse current correlations C_L(q, t), C_T(q, t); they are damped with
dynasor's :func:`~dynasor.tools.acfs.gaussian_decay` and Fourier transformed with
:func:`~dynasor.tools.acfs.psd_from_acf_2d`. Peaks of C(q, ω) are fitted with dynasor's
damped harmonic oscillator :func:`~dynasor.tools.damped_harmonic_oscillator.psd_velocity_dho`
(scipy least squares) for their centre and width.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from ase import Atoms
from numpy.typing import NDArray
from scipy.optimize import curve_fit
from scipy.signal import find_peaks

from mlff2d.dynamics.results import DispersionResult
from mlff2d.dynamics.trajectory import MDTrajectory, element_indices, reference_structure
from mlff2d.errors import InputError
from mlff2d.structures.bz import HEX_POINTS, HEX_SEGMENTS
from mlff2d.units import FS_TO_PS, PS_TO_FS, RAD_PER_FS_TO_THZ

if TYPE_CHECKING:
    from mlff2d.dynamics.workflow import DispersionSettings

logger = logging.getLogger(__name__)


def primitive_cell(
    atoms: Atoms, supercell: tuple[int, int] | None = None
) -> tuple[NDArray[np.float64], tuple[int, int]]:
    """Primitive cell (3×3 rows, Å) of an in-plane ``n × m`` supercell.

    ``supercell`` defaults to ``atoms.info["supercell"]`` (set by ``mlff2d structure``).

    Raises
    ------
    InputError
        If the repetitions are unknown.
    """
    sc = supercell or atoms.info.get("supercell")
    if sc is None:
        raise InputError(
            "the structure does not say which supercell it is", "pass --supercell N M (e.g. 12 12)"
        )
    n, m = (int(x) for x in np.ravel(sc)[:2])
    prim = atoms.cell.array.copy()
    prim[0] /= n
    prim[1] /= m
    return prim, (n, m)


def path_qpoints(
    prim: NDArray[np.float64], cell: NDArray[np.float64]
) -> tuple[NDArray, NDArray, NDArray, list[str], NDArray]:
    """Commensurate q-points along Γ–M–K–Γ.

    Returns
    -------
    q_cart
        (n_q, 3) rad/Å; segment end points appear once.
    q_frac
        (n_q, 3) fractional coordinates of the primitive reciprocal cell.
    distance
        (n_q,) cumulative path distance (rad/Å).
    labels, label_distance
        Special points and their distances.
    """
    from dynasor.qpoints import get_supercell_qpoints_along_path

    points = {k: list(v) for k, v in HEX_POINTS.items()}
    segs = get_supercell_qpoints_along_path(HEX_SEGMENTS, points, prim, cell)
    rec = 2 * np.pi * np.linalg.inv(prim).T
    q_list, dist, labels, ldist = [], [], [HEX_SEGMENTS[0][0]], [0.0]
    d0 = 0.0
    for (a, b), seg in zip(HEX_SEGMENTS, segs, strict=True):
        start = np.array(HEX_POINTS[a]) @ rec
        for q in seg:
            dd = d0 + float(np.linalg.norm(q - start))
            if q_list and np.allclose(q, q_list[-1]):
                continue
            q_list.append(q)
            dist.append(dd)
        d0 += float(np.linalg.norm((np.array(HEX_POINTS[b]) - HEX_POINTS[a]) @ rec))
        labels.append(b)
        ldist.append(d0)
    q_cart = np.array(q_list)
    q_frac = q_cart @ np.linalg.inv(rec)
    return q_cart, q_frac, np.array(dist), labels, np.array(ldist)


def _fit_peaks(
    freqs: NDArray, spec: NDArray, max_peaks: int, min_rel: float
) -> list[tuple[float, float, float, float, float]]:
    """DHO fit of the main peaks of one spectrum: (centre, fwhm, height, err_c, err_w) THz."""
    from dynasor.tools.damped_harmonic_oscillator import psd_velocity_dho

    if not np.any(spec > 0):
        return []
    top = float(spec.max())
    idx, props = find_peaks(spec, height=min_rel * top, prominence=0.5 * min_rel * top)
    idx = idx[freqs[idx] > 0][np.argsort(props["prominences"][freqs[idx] > 0])[::-1][:max_peaks]]
    if idx.size == 0:
        return []
    w = freqs / RAD_PER_FS_TO_THZ  # rad/fs, the DHO's variable
    dw = w[1] - w[0]

    def model(x, *p):
        y = np.zeros_like(x)
        for k in range(0, len(p), 3):
            y += psd_velocity_dho(x, p[k], p[k + 1], p[k + 2])
        return y

    p0, lo, hi = [], [], []
    for i in idx:
        g0 = 2 * dw
        amp = spec[i] * g0 / 2.0  # peak of the velocity DHO: 2 A / gamma at w = w0
        p0 += [w[i], g0, amp]
        lo += [max(w[i] - 5 * dw, dw), 0.5 * dw, 0.0]
        hi += [w[i] + 5 * dw, 50 * dw, np.inf]
    try:
        p, cov = curve_fit(model, w, spec, p0=p0, bounds=(lo, hi), maxfev=4000)
        err = np.sqrt(np.clip(np.diag(cov), 0, None))
    except (RuntimeError, ValueError):
        logger.debug("DHO fit failed; keeping find_peaks positions")
        return [(float(freqs[i]), float("nan"), float(spec[i]), float("nan"), float("nan")) for i in idx]
    out = []
    for k in range(0, len(p), 3):
        w0, gam, amp = p[k : k + 3]
        out.append(
            (
                w0 * RAD_PER_FS_TO_THZ,
                gam * RAD_PER_FS_TO_THZ,
                2 * amp / gam,
                err[k] * RAD_PER_FS_TO_THZ,
                err[k + 1] * RAD_PER_FS_TO_THZ,
            )
        )
    return sorted(out)


def harmonic_bands(
    path: str | Path,
    prim: NDArray[np.float64],
    q_frac: NDArray[np.float64],
    labels_distance: NDArray[np.float64],
    n_dense: int = 60,
) -> tuple[NDArray, NDArray, NDArray]:
    """Harmonic bands from a phonopy params file, along the path and at ``q_frac``.

    Returns (distance (n_h,) rad/Å, bands (n_h, n_b) THz, at_q (n_q, n_b) THz).

    Raises
    ------
    InputError
        If the file is missing or not a phonopy file.
    """
    import phonopy

    p = Path(path)
    if not p.is_file():
        raise InputError(f"harmonic phonon file not found: {p}", "give the phonopy_params.yaml")
    try:
        ph = phonopy.load(str(p), produce_fc=True, log_level=0)
    except Exception as exc:  # noqa: BLE001 - phonopy raises many types for a bad file
        raise InputError(f"cannot load {p.name} with phonopy: {exc}") from None
    ratio = np.linalg.norm(ph.primitive.cell[:2], axis=1) / np.linalg.norm(prim[:2], axis=1)
    if not np.allclose(ratio, 1.0, atol=0.02):
        logger.warning("the harmonic primitive cell differs from the MD one by %s", ratio)
    rec = 2 * np.pi * np.linalg.inv(prim).T
    dense_q, dense_d = [], []
    for k, (a, b) in enumerate(HEX_SEGMENTS):
        qa, qb = np.array(HEX_POINTS[a]), np.array(HEX_POINTS[b])
        for t in np.linspace(0.0, 1.0, n_dense):
            q = qa + t * (qb - qa)
            dense_q.append(q)
            dense_d.append(labels_distance[k] + float(np.linalg.norm((q - qa) @ rec)))
    ph.run_qpoints(np.array(dense_q))
    bands = ph.qpoints.frequencies
    ph.run_qpoints(np.asarray(q_frac))
    at_q = ph.qpoints.frequencies
    return np.array(dense_d), np.asarray(bands), np.asarray(at_q)


def _current_spectra(
    traj: MDTrajectory, atoms: Atoms, q_cart: NDArray, window: int, step: int, sigma_fs: float
) -> tuple[NDArray, dict[str, NDArray]]:
    """Damped current correlations C_L, C_T at ``q_cart`` (rad/Å), Fourier transformed.

    Returns (frequencies (n_f,) THz, ``{"Clqt", "Ctqt"}`` spectra (n_q, n_f)). ``window`` and
    ``step`` are in frames, ``sigma_fs`` is the standard deviation of the Gaussian damping (fs).
    """
    from dynasor import compute_dynamic_structure_factors
    from dynasor.tools.acfs import gaussian_decay, psd_from_acf_2d

    logger.info(
        "currents at %d q-points, window %d frames (%.2f ps): Nyquist %.2f THz, resolution %.3f THz",
        len(q_cart),
        window,
        window * traj.frame_dt_fs * FS_TO_PS,
        traj.nyquist_thz(),
        traj.resolution_thz(2 * window + 1),
    )
    tr = traj.open(element_indices(atoms), properties=["positions", "velocities"])
    sample = compute_dynamic_structure_factors(
        tr,
        q_cart,
        dt=traj.frame_dt_fs,
        window_size=window,
        window_step=step,
        calculate_currents=True,
        logging_interval=0,
    )
    damp = gaussian_decay(np.asarray(sample["time"]), sigma_fs)
    spectra = {}
    for key in ("Clqt", "Ctqt"):
        w, c = psd_from_acf_2d(sample[key] * damp[None, :], traj.frame_dt_fs)
        spectra[key] = np.asarray(c)
    return np.asarray(w) * RAD_PER_FS_TO_THZ, spectra


def _peak_table(
    freqs: NDArray, spectra: dict[str, NDArray], h_q: NDArray, max_peaks: int, min_rel: float
) -> list[list[float]]:
    """DHO peaks of every q-point and branch as 9 columns (see :class:`DispersionResult`).

    ``h_q`` (n_q, n_bands) are the harmonic frequencies at the q-points (THz; empty: none).
    """
    rows = []
    for iq in range(spectra["Clqt"].shape[0]):
        for branch, key in enumerate(("Clqt", "Ctqt")):
            for c, fw, hgt, ec, ef in _fit_peaks(freqs, spectra[key][iq], max_peaks, min_rel):
                near = float(h_q[iq][np.argmin(np.abs(h_q[iq] - c))]) if h_q.size else np.nan
                rows.append((iq, branch, c, fw, hgt, ec, ef, near, c - near))
    return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(9)]


def compute_dispersion(
    traj: MDTrajectory,
    atoms: Atoms,
    settings: DispersionSettings,
    harmonic: str | Path | None = None,
) -> DispersionResult:
    """Current-correlation spectra along Γ–M–K–Γ with DHO peak fits.

    Parameters
    ----------
    traj
        Trajectory with positions and velocities.
    atoms
        Reference structure (elements in trajectory order; ``info["supercell"]``).
    settings
        The stage settings; this uses ``supercell`` (default from ``atoms.info``),
        ``window_ps`` (ps), ``window_step``, ``damping_ps`` (ps), ``max_peaks`` and
        ``min_rel_height``.
    harmonic
        Optional phonopy params file of the primitive cell for the harmonic bands.

    Raises
    ------
    InputError
        If the structure does not match or the window is too short or too long.
    """
    s = settings
    atoms = reference_structure(traj, atoms)
    prim, sc = primitive_cell(atoms, s.supercell)
    q_cart, q_frac, dist, labels, ldist = path_qpoints(prim, atoms.cell.array)
    window = int(round(s.window_ps * PS_TO_FS / traj.frame_dt_fs))
    if window < 8 or window >= traj.n_frames:
        raise InputError(
            f"a {s.window_ps} ps window is {window} frames of {traj.n_frames}",
            "choose --window-ps between 8 frames and the run length",
        )
    step = s.window_step or max(1, window // 2)
    sigma_fs = (s.damping_ps or s.window_ps / 2.5) * PS_TO_FS
    freqs, spectra = _current_spectra(traj, atoms, q_cart, window, step, sigma_fs)
    h_d = h_b = h_q = np.zeros((0,))
    if harmonic is not None:
        h_d, h_b, h_q = harmonic_bands(harmonic, prim, q_frac, ldist)
    cols = _peak_table(freqs, spectra, h_q, s.max_peaks, s.min_rel_height)
    return DispersionResult(
        q_points=q_cart,
        q_frac=q_frac,
        distance=dist,
        label_distance=ldist,
        frequencies=freqs,
        current_l=spectra["Clqt"],
        current_t=spectra["Ctqt"],
        harmonic_distance=np.asarray(h_d, float),
        harmonic_bands=np.asarray(h_b, float),
        harmonic_at_q=np.asarray(h_q, float),
        peak_q_index=np.array(cols[0], dtype=np.int64),
        peak_branch=np.array(cols[1], dtype=np.int64),
        peak_center=np.array(cols[2], float),
        peak_fwhm=np.array(cols[3], float),
        peak_height=np.array(cols[4], float),
        peak_center_err=np.array(cols[5], float),
        peak_fwhm_err=np.array(cols[6], float),
        peak_harmonic=np.array(cols[7], float),
        peak_shift=np.array(cols[8], float),
        labels=labels,
        supercell=list(sc),
        dt_fs=traj.dt_fs,
        stride=traj.stride,
        window_size=window,
        n_frames=traj.n_frames,
        resolution_thz=float(freqs[1] - freqs[0]),
        nyquist_thz=traj.nyquist_thz(),
        damping_ps=sigma_fs * FS_TO_PS,
    )
