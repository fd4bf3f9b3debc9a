"""Figures of the MD spectra: ``vdos_vs_harmonic``, ``vdos_radial``, ``dispersion_md``.

Every figure is written as PNG and PDF; frequencies in THz with a cm⁻¹ secondary axis.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlff2d.dynamics.results import DispersionResult, HarmonicDOS, VDOSResult
from mlff2d.units import cm1_to_thz, thz_to_cm1


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def add_cm1_axis(ax, axis: str = "x") -> None:
    """Add a secondary cm⁻¹ axis to a THz axis (``"x"``: on top, ``"y"``: on the right)."""
    if axis == "x":
        sec = ax.secondary_xaxis("top", functions=(thz_to_cm1, cm1_to_thz))
        sec.set_xlabel("Wavenumber (cm$^{-1}$)")
    else:
        sec = ax.secondary_yaxis("right", functions=(thz_to_cm1, cm1_to_thz))
        sec.set_ylabel("Wavenumber (cm$^{-1}$)")


def save_figure(fig, outdir: str | Path, stem: str) -> list[Path]:
    """Write ``fig`` as ``outdir/stem.png`` and ``.pdf``, close it, return the paths."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    _plt().close(fig)
    return paths


def _fmax(v: VDOSResult) -> float:
    """Highest frequency with signal, plus a margin (THz)."""
    above = np.flatnonzero(v.total > 1e-3 * v.total.max())
    return float(min(v.frequencies[above[-1]] * 1.08 + 0.5, v.frequencies[-1])) if above.size else 10.0


def plot_vdos_vs_harmonic(
    vdos: VDOSResult,
    harmonic: HarmonicDOS | None,
    outdir: str | Path,
    peaks: list[dict] | None = None,
    title: str = "",
) -> list[Path]:
    """MD VDOS (mean ± standard error over windows) over the harmonic DOS, with element partials."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    f = vdos.frequencies
    if harmonic is not None:
        ax.fill_between(
            harmonic.frequencies,
            harmonic.dos,
            color="0.8",
            lw=0,
            label=f"harmonic ({harmonic.source.split(' ')[0]})",
        )
    ax.plot(
        f,
        vdos.total,
        color="C0",
        lw=1.2,
        label=f"MD {np.mean(vdos.window_temperatures):.0f} K ({vdos.method})",
    )
    ax.fill_between(f, vdos.total - vdos.total_err, vdos.total + vdos.total_err, color="C0", alpha=0.3, lw=0)
    for k, el in enumerate(vdos.elements):
        ax.plot(f, vdos.element_dos[k], lw=0.8, ls="--", color=f"C{k + 1}", label=f"MD {el}")
    for row in peaks or []:
        ax.axvline(row["harmonic_thz"], color="0.5", lw=0.5, ls=":")
    ax.set_xlim(0, _fmax(vdos))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("Frequency (THz)")
    ax.set_ylabel("DOS (states/THz)")
    add_cm1_axis(ax, "x")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(title or f"VDOS: {vdos.n_windows} windows, Δν = {vdos.resolution_thz:.3f} THz", fontsize=9)
    return save_figure(fig, outdir, "vdos_vs_harmonic")


def plot_vdos_radial(
    vdos: VDOSResult, outdir: str | Path, harmonic_shells: dict | None = None, max_shells: int = 12
) -> list[Path]:
    """VDOS per atom of the ``max_shells`` innermost radial shells around the defect, offset.

    ``harmonic_shells`` (from :func:`mlff2d.dynamics.vdos.load_harmonic_shells`) overlays the
    harmonic local PDOS per atom of the same shells (dashed) where the shell edges agree.
    """
    plt = _plt()
    n = min(len(vdos.shell_counts), max_shells)
    fig, ax = plt.subplots(figsize=(6, 1.2 + 0.7 * n))
    f = vdos.frequencies
    per_atom_total = vdos.total / vdos.n_atoms
    offset = 1.1 * float(np.max(vdos.shell_dos[:n] / np.maximum(vdos.shell_counts[:n], 1)[:, None]))
    for k in range(n):
        c = max(int(vdos.shell_counts[k]), 1)
        y0 = k * offset
        y, e = vdos.shell_dos[k] / c, vdos.shell_err[k] / c
        ax.plot(f, per_atom_total + y0, color="0.6", lw=0.6)
        color = plt.cm.viridis(k / max(n - 1, 1))
        ax.plot(f, y + y0, color=color, lw=1.0)
        ax.fill_between(f, y - e + y0, y + e + y0, color=color, alpha=0.3, lw=0)
        h = harmonic_shells
        if h is not None and k < len(h["counts"]) and np.isclose(h["edges"][k], vdos.shell_edges[k]):
            if h["counts"][k] > 0:
                ax.plot(h["frequencies"], h["pdos"][k] / h["counts"][k] + y0, color="k", lw=0.6, ls="--")
        lo, hi = vdos.shell_edges[k], vdos.shell_edges[k + 1]
        ax.text(
            0.99,
            (y0 + 0.35 * offset),
            f"[{lo:.0f}, {hi:.0f}) Å, {vdos.shell_counts[k]} atoms",
            transform=ax.get_yaxis_transform(),
            ha="right",
            fontsize=7,
        )
    ax.set_xlim(0, _fmax(vdos))
    ax.set_yticks([])
    ax.set_xlabel("Frequency (THz)")
    ax.set_ylabel("VDOS per atom (offset by shell)")
    add_cm1_axis(ax, "x")
    extra = ", dashed: harmonic local PDOS" if harmonic_shells is not None else ""
    ax.set_title(f"VDOS by distance from the defect (grey: cell average{extra})", fontsize=9)
    return save_figure(fig, outdir, "vdos_radial")


def plot_dispersion(disp: DispersionResult, outdir: str | Path, fmax: float | None = None) -> list[Path]:
    """Heat maps of C_L(q, ν) and C_T(q, ν) along Γ–M–K–Γ, harmonic bands and fitted peaks."""
    plt = _plt()
    from matplotlib.colors import PowerNorm

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), sharey=True)
    f = disp.frequencies
    if fmax:
        top = fmax
    elif disp.harmonic_bands.size:
        top = float(np.nanmax(disp.harmonic_bands) * 1.1)
    else:
        top = min(12.0, float(f[-1]))
    d = disp.distance
    for branch, (ax, data, name) in enumerate(
        zip(axes, (disp.current_l, disp.current_t), ("longitudinal $C_L$", "transverse $C_T$"), strict=True)
    ):
        z = np.clip(data, 0, None)
        z = z / np.maximum(z.max(axis=1, keepdims=True), 1e-300)  # each q scaled to its maximum
        ax.pcolormesh(
            d,
            f,
            z.T,
            shading="nearest",
            cmap="magma",
            norm=PowerNorm(0.4, vmin=0.0, vmax=1.0),
            rasterized=True,
        )
        if disp.harmonic_bands.size:
            ax.plot(disp.harmonic_distance, disp.harmonic_bands, color="w", lw=0.6, ls="--")
        sel = disp.peak_branch == branch
        ax.errorbar(
            d[disp.peak_q_index[sel]],
            disp.peak_center[sel],
            yerr=0.5 * np.nan_to_num(disp.peak_fwhm[sel]),
            fmt="o",
            ms=3,
            color="cyan",
            elinewidth=0.8,
            label="DHO peaks (bar: ±FWHM/2)",
        )
        ax.set_xticks(disp.label_distance, disp.labels)
        for x in disp.label_distance:
            ax.axvline(x, color="w", lw=0.5)
        ax.set_xlim(d[0], d[-1])
        ax.set_title(name, fontsize=9)
    axes[0].set_ylim(0, top)
    axes[0].set_ylabel("Frequency (THz)")
    add_cm1_axis(axes[1], "y")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(
        f"MD current correlations, {disp.supercell[0]}×{disp.supercell[1]} cell, "
        f"Δν = {disp.resolution_thz:.3f} THz (white: harmonic)",
        fontsize=9,
    )
    return save_figure(fig, outdir, "dispersion_md")
