"""Figures of the phonon workflows (PNG + PDF, THz with a secondary cm⁻¹ axis)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlff2d.phonons.results import DOS, BandStructure, Modes, ShellPDOS, SpectralMap
from mlff2d.units import CM1_TO_THZ, THZ_TO_CM1

_STYLE = {
    "font.size": 11,
    "axes.labelsize": 12,
    "axes.titlesize": 12,
    "legend.fontsize": 9,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "savefig.dpi": 200,
}
_COLORS = {"W": "#1f77b4", "Se": "#d62728", "Mo": "#2ca02c", "S": "#ff7f0e", "Te": "#9467bd"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    plt.rcParams.update(_STYLE)
    return plt


def _save(fig, stem: str | Path) -> dict[str, Path]:
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = {}
    for ext in ("png", "pdf"):
        p = stem.with_suffix(f".{ext}")
        fig.savefig(p, bbox_inches="tight")
        out[ext] = p
    import matplotlib.pyplot as plt

    plt.close(fig)
    return out


def _cm1_axis(ax) -> None:
    sec = ax.secondary_yaxis("right", functions=(lambda f: f * THZ_TO_CM1, lambda w: w * CM1_TO_THZ))
    sec.set_ylabel("Wavenumber (cm$^{-1}$)")


def _band_axes(ax, ticks: np.ndarray, labels: list[str]) -> None:
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels)
    for t in ticks[1:-1]:
        ax.axvline(t, color="0.6", lw=0.6)
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set_xlim(ticks[0], ticks[-1])
    ax.set_ylabel("Frequency (THz)")


def _dos_panel(ax_dos, ax_bands, freqs: np.ndarray) -> None:
    """Label the DOS panel, add its cm⁻¹ axis and show the frequency range of ``freqs`` (THz)."""
    ax_dos.set_xlabel("DOS (states/THz/atom)")
    ax_dos.set_xlim(0, None)
    ax_dos.legend(loc="upper right", frameon=False)
    ax_bands.set_ylim(min(-0.2, freqs[0]), freqs[-1])
    _cm1_axis(ax_dos)


def _element(name: str) -> str:
    return name.split()[0]


def plot_bands_pdos(bands: BandStructure, dos: DOS, gamma: Modes | None, stem: str | Path) -> dict[str, Path]:
    """Pristine bands (with Γ irreps) beside the total DOS and PDOS by element and direction."""
    plt = _pyplot()
    fig, (ax, axd) = plt.subplots(
        1, 2, figsize=(8.5, 5), sharey=True, gridspec_kw={"width_ratios": [2.6, 1], "wspace": 0.05}
    )
    ax.plot(bands.distances, bands.frequencies, color="k", lw=1.2)
    _band_axes(ax, bands.tick_distances, bands.tick_labels)
    if gamma is not None and gamma.labels:
        seen = set()
        for f, lab in zip(gamma.frequencies, gamma.labels, strict=True):
            key = (lab, round(float(f), 2))
            if lab and f > 0.5 and key not in seen:
                seen.add(key)
                ax.annotate(
                    lab,
                    (bands.distances[0], f),
                    xytext=(4, 2),
                    textcoords="offset points",
                    fontsize=9,
                    color="0.25",
                )
    axd.fill_betweenx(dos.frequencies, dos.total, color="0.85", label="total")
    for name, y in dos.partial.items():
        ls = "--" if name.endswith(" z") else "-"
        label = name.replace(" xy", " in-plane").replace(" z", " out-of-plane")
        axd.plot(y, dos.frequencies, ls, color=_COLORS.get(_element(name), None), lw=1.1, label=label)
    _dos_panel(axd, ax, dos.frequencies)
    return _save(fig, stem)


def plot_compare_band_pdos(
    bands: BandStructure, unfolded: SpectralMap, pristine: DOS, defect: DOS, stem: str | Path
) -> dict[str, Path]:
    """Pristine bands, the unfolded defect spectral map (pristine bands dashed) and the DOS."""
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, 3, figsize=(12, 5), sharey=True, gridspec_kw={"width_ratios": [2, 2, 1.2], "wspace": 0.06}
    )
    ax0, ax1, ax2 = axes
    ax0.plot(bands.distances, bands.frequencies, color="k", lw=1.1)
    _band_axes(ax0, bands.tick_distances, bands.tick_labels)
    ax0.set_title("pristine")
    scale = unfolded.tick_distances[-1] / bands.tick_distances[-1]
    w = unfolded.weights.T
    vmax = np.percentile(w[w > 0], 99) if np.any(w > 0) else 1.0
    ax1.pcolormesh(
        unfolded.distances,
        unfolded.frequencies,
        w,
        shading="gouraud",
        cmap="Blues",
        vmin=0,
        vmax=vmax,
        rasterized=True,
    )
    ax1.plot(bands.distances * scale, bands.frequencies, color="tab:red", lw=0.6, ls="--", alpha=0.7)
    _band_axes(ax1, unfolded.tick_distances, unfolded.tick_labels)
    ax1.set_ylabel("")
    ax1.set_title("defect supercell, unfolded")
    ax2.plot(pristine.total, pristine.frequencies, color="k", lw=1.2, label="pristine")
    ax2.plot(defect.total, defect.frequencies, color="tab:blue", lw=1.2, label="defect")
    for name, y in defect.partial.items():
        ax2.plot(y, defect.frequencies, color=_COLORS.get(name), lw=0.9, ls=":", label=f"defect {name}")
    _dos_panel(ax2, ax0, defect.frequencies)
    return _save(fig, stem)


def plot_local_pdos(
    pristine: ShellPDOS, defect: ShellPDOS, stem: str | Path, max_shells: int = 8
) -> dict[str, Path]:
    """Local PDOS per atom in distance shells around the defect, pristine vs defect."""
    plt = _pyplot()
    n = min(max_shells, len(defect.counts))
    fig, ax = plt.subplots(figsize=(6.5, 1.2 * n + 1.5))
    per_p = pristine.pdos[:n] / np.maximum(pristine.counts[:n], 1)[:, None]
    per_d = defect.pdos[:n] / np.maximum(defect.counts[:n], 1)[:, None]
    step = 1.1 * max(per_p.max(), per_d.max())
    for i in range(n):
        off = (n - 1 - i) * step
        ax.plot(
            defect.frequencies,
            per_p[i] + off,
            color="0.4",
            lw=1.0,
            ls="--",
            label="pristine" if i == 0 else None,
        )
        ax.plot(
            defect.frequencies, per_d[i] + off, color="tab:blue", lw=1.2, label="defect" if i == 0 else None
        )
        ax.text(
            defect.frequencies[0],
            off + 0.45 * step,
            f"{defect.edges[i]:.0f}–{defect.edges[i + 1]:.0f} Å "
            f"({pristine.counts[i]} / {defect.counts[i]} atoms)",
            fontsize=8,
        )
    ax.set_xlabel("Frequency (THz)")
    ax.set_ylabel("Local PDOS per atom (offset)")
    ax.set_title("Shells around the defect (atoms: pristine / defect)", pad=28)
    ax.set_yticks([])
    ax.legend(loc="upper right", frameon=False)
    sec = ax.secondary_xaxis("top", functions=(lambda f: f * THZ_TO_CM1, lambda w: w * CM1_TO_THZ))
    sec.set_xlabel("Wavenumber (cm$^{-1}$)")
    return _save(fig, stem)


def plot_ipr(modes: Modes, n_atoms: int, stem: str | Path) -> dict[str, Path]:
    """IPR of the Γ modes vs frequency, coloured by the weight near the defect."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    sc = ax.scatter(
        modes.frequencies,
        modes.ipr,
        c=modes.defect_weight,
        s=10,
        cmap="viridis",
        vmin=0,
        vmax=max(0.2, float(modes.defect_weight.max())),
    )
    ax.axhline(1.0 / n_atoms, color="0.5", ls=":", lw=1, label="1/N (fully delocalised)")
    ax.set_yscale("log")
    ax.set_xlabel("Frequency (THz)")
    ax.set_ylabel("Inverse participation ratio")
    ax.legend(loc="upper left", frameon=False)
    fig.colorbar(sc, ax=ax, label="weight within radius of defect", pad=0.12)
    sec = ax.secondary_xaxis("top", functions=(lambda f: f * THZ_TO_CM1, lambda w: w * CM1_TO_THZ))
    sec.set_xlabel("Wavenumber (cm$^{-1}$)")
    return _save(fig, stem)


def plot_overlay(
    a: BandStructure, b: BandStructure, labels: tuple[str, str], stem: str | Path
) -> dict[str, Path]:
    """Two band structures on one path (``b`` dashed) for ``phonons compare``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5))
    la = ax.plot(a.distances, a.frequencies, color="k", lw=1.2)
    lb = ax.plot(a.distances, b.frequencies, color="tab:red", lw=1.0, ls="--")
    _band_axes(ax, a.tick_distances, a.tick_labels)
    ax.legend([la[0], lb[0]], list(labels), loc="upper right", frameon=False)
    _cm1_axis(ax)
    return _save(fig, stem)
