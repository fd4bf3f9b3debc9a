"""Calibration of a committee's force uncertainty σ_F against the true force error, per atom.

σ_F of atom i is the spread of the K members' forces, sqrt(mean_k |F_k,i − F̄_i|²) (eV/Å,
:func:`forces_std`); the true error is |F̄_i − F_ref,i| (eV/Å) of the committee mean. On a
labelled dataset (extxyz with ``REF_forces``):

- **rank correlation**: Spearman's ρ between σ_F and the error over all atoms (1: σ_F orders
  the atoms exactly by their error);
- **calibration curve**: atoms sorted by σ_F into bins of equal count; per bin the median σ_F
  and the RMS error. For a calibrated committee (Gaussian errors of the size of the spread)
  the curve lies on the diagonal: RMS error = σ_F;
- **threshold** (:func:`threshold_from_bins`): the smallest σ_F from which on *every* bin's RMS
  error is at least ``target`` (default 0.1 eV/Å): the lower σ_F edge of the lowest such bin.
  Atoms above it are, as a group, predicted worse than the target. ``None`` when no bin
  reaches the target (the errors stay below it for every σ_F seen); it then cannot be set
  from these data.

Written by ``mlff2d evaluate COMMITTEE_FOLDER DATA`` as ``calibration.png`` (scatter and binned
curve, log-log) and ``metrics.json["uncertainty"]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:  # pragma: no cover
    from mlff2d.training.evaluate import Predictions

#: the rule behind the threshold, recorded with it.
THRESHOLD_RULE = (
    "lower sigma_F edge of the lowest equal-count bin from which on every bin's RMS force error >= target"
)


def forces_std(forces_members: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per-atom σ_F = sqrt(mean_k |F_k,i − F̄_i|²) of member forces of shape (K, N, 3) (eV/Å), shape (N,)."""
    f = np.asarray(forces_members, dtype=float)
    return np.sqrt(np.mean(np.sum((f - f.mean(axis=0)) ** 2, axis=-1), axis=0))


def force_errors(forces_pred: NDArray[np.float64], forces_ref: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per-atom |F_pred − F_ref| (eV/Å) of forces of shape (N, 3), shape (N,)."""
    return np.linalg.norm(np.asarray(forces_pred) - np.asarray(forces_ref), axis=1)


@dataclass
class Calibration:
    """σ_F against the true force error of every atom of a dataset.

    Attributes
    ----------
    sigma, error
        σ_F and |F̄ − F_ref| per atom (eV/Å), shape (N,).
    spearman, spearman_p
        Spearman's rank correlation of ``sigma`` with ``error`` and its p-value.
    bin_edges
        σ_F edges of the equal-count bins (eV/Å), shape (B + 1,).
    bin_sigma, bin_rms_error
        Median σ_F and RMS error per bin (eV/Å), shape (B,).
    bin_counts
        Atoms per bin, shape (B,).
    target
        The force error the threshold refers to (eV/Å).
    threshold
        σ_F threshold (eV/Å, :func:`threshold_from_bins`), ``None`` if no bin reaches ``target``.
    """

    sigma: NDArray[np.float64]
    error: NDArray[np.float64]
    spearman: float
    spearman_p: float
    bin_edges: NDArray[np.float64]
    bin_sigma: NDArray[np.float64]
    bin_rms_error: NDArray[np.float64]
    bin_counts: NDArray[np.int64]
    target: float
    threshold: float | None

    def __str__(self) -> str:
        thr = "not reached" if self.threshold is None else f"{self.threshold:.3g} eV/Å"
        return (
            f"Calibration({len(self.sigma)} atoms, {len(self.bin_counts)} bins, "
            f"Spearman {self.spearman:.3f}, threshold for {self.target:g} eV/Å: {thr})"
        )

    def summary(self) -> dict[str, Any]:
        """The numbers as plain types (``metrics.json["uncertainty"]``), eV/Å."""
        above = float(np.mean(self.sigma >= self.threshold)) if self.threshold is not None else 0.0
        return {
            "spearman": self.spearman,
            "spearman_p": self.spearman_p,
            "threshold_eV_per_A": self.threshold,
            "target_eV_per_A": self.target,
            "threshold_rule": THRESHOLD_RULE,
            "fraction_above_threshold": above,
            "n_atoms": len(self.sigma),
            "sigma_median_eV_per_A": float(np.median(self.sigma)),
            "sigma_max_eV_per_A": float(np.max(self.sigma)),
            "error_rms_eV_per_A": float(np.sqrt(np.mean(self.error**2))),
            "bins": [
                {
                    "sigma_lo": float(lo),
                    "sigma_hi": float(hi),
                    "sigma_median": float(s),
                    "rms_error": float(e),
                    "n": int(n),
                }
                for lo, hi, s, e, n in zip(
                    self.bin_edges[:-1],
                    self.bin_edges[1:],
                    self.bin_sigma,
                    self.bin_rms_error,
                    self.bin_counts,
                    strict=True,
                )
            ],
        }


def threshold_from_bins(
    edges: NDArray[np.float64], rms_error: NDArray[np.float64], target: float
) -> float | None:
    """The smallest σ_F from which on every bin's RMS error is ≥ ``target`` (its lower edge).

    Parameters
    ----------
    edges
        Bin edges in σ_F (eV/Å), increasing, shape (B + 1,).
    rms_error
        RMS force error per bin (eV/Å), shape (B,).
    target
        Force error (eV/Å).

    Returns
    -------
    float or None
        The lower edge of the lowest bin of the trailing run of bins at or above ``target``;
        ``None`` if the bin with the largest σ_F is below ``target``.
    """
    above = np.asarray(rms_error) >= target
    if not above[-1]:
        return None
    first = len(above) - int(np.argmin(above[::-1])) if not above.all() else 0
    return float(edges[first])


def calibrate(
    sigma: NDArray[np.float64], error: NDArray[np.float64], target: float = 0.1, n_bins: int = 10
) -> Calibration:
    """Rank correlation, binned calibration curve and threshold of σ_F against the force error.

    Parameters
    ----------
    sigma
        σ_F per atom (eV/Å), shape (N,).
    error
        True force error per atom, |F̄ − F_ref| (eV/Å), shape (N,).
    target
        Force error for the threshold (eV/Å).
    n_bins
        Number of equal-count bins (fewer for small data: at least 5 atoms per bin).
    """
    from scipy.stats import spearmanr

    sigma, error = np.asarray(sigma, dtype=float), np.asarray(error, dtype=float)
    if sigma.shape != error.shape or sigma.ndim != 1 or len(sigma) < 2:
        raise ValueError(
            f"sigma and error must be two equal 1D arrays of ≥ 2 atoms, got {sigma.shape}, {error.shape}"
        )
    rho = spearmanr(sigma, error)
    order = np.argsort(sigma, kind="stable")
    groups = np.array_split(order, max(1, min(n_bins, len(sigma) // 5)))
    edges = np.array([sigma[g[0]] for g in groups] + [sigma[order[-1]]])
    rms = np.array([np.sqrt(np.mean(error[g] ** 2)) for g in groups])
    return Calibration(
        sigma=sigma,
        error=error,
        spearman=float(rho.statistic),
        spearman_p=float(rho.pvalue),
        bin_edges=edges,
        bin_sigma=np.array([np.median(sigma[g]) for g in groups]),
        bin_rms_error=rms,
        bin_counts=np.array([len(g) for g in groups]),
        target=target,
        threshold=threshold_from_bins(edges, rms, target),
    )


def plot_calibration(cal: Calibration, path: str | Path) -> Path:
    """Scatter of σ_F against the force error per atom with the binned RMS curve (log-log, eV/Å)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floor = 1e-6  # log axes: exact zeros drawn at the floor
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ax.scatter(
        np.maximum(cal.sigma, floor), np.maximum(cal.error, floor), s=3, alpha=0.3, lw=0, label="atoms"
    )
    ax.plot(cal.bin_sigma, cal.bin_rms_error, "o-", color="C3", label="binned RMS error")
    lo = max(floor, min(cal.sigma.min(), cal.error.min()))
    hi = max(cal.sigma.max(), cal.error.max())
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="RMS error = σ_F")
    ax.axhline(cal.target, color="0.5", lw=0.8, ls=":")
    if cal.threshold is not None:
        ax.axvline(cal.threshold, color="C2", lw=1.0, label=f"threshold {cal.threshold:.3g} eV/Å")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="committee σ_F (eV/Å)",
        ylabel="force error |F − F_ref| (eV/Å)",
        title=f"Spearman ρ = {cal.spearman:.2f} ({len(cal.sigma)} atoms)",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=130)
    plt.close(fig)
    return out


def calibrate_predictions(
    pred: Predictions, target: float, outdir: str | Path
) -> tuple[dict[str, Any], Path]:
    """Calibrate the committee predictions of a dataset; write ``outdir/calibration.png``.

    Returns
    -------
    (summary, figure)
        :meth:`Calibration.summary` and the figure's path.
    """
    if pred.forces_members is None:
        raise ValueError("calibration needs the member forces of a committee")
    cal = calibrate(forces_std(pred.forces_members), force_errors(pred.forces_pred, pred.forces_ref), target)
    return cal.summary(), plot_calibration(cal, Path(outdir) / "calibration.png")


def describe(summary: dict[str, Any]) -> str:
    """One line of a calibration summary (:meth:`Calibration.summary`)."""
    thr = summary.get("threshold_eV_per_A")
    where = (
        f"threshold {thr:.3g} eV/Å ({100 * summary['fraction_above_threshold']:.0f} % of atoms above)"
        if thr is not None
        else "threshold not reached (no σ_F bin with that RMS error)"
    )
    return (
        f"σ_F vs force error: Spearman {summary['spearman']:.2f} over {summary['n_atoms']} atoms; "
        f"for {summary['target_eV_per_A']:g} eV/Å {where}"
    )
