"""Compare two phonon results on one Γ–M–K–Γ path (e.g. a MACE student vs its SW teacher)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from mlff2d.errors import InputError
from mlff2d.phonons import core
from mlff2d.phonons.results import BandStructure, Modes
from mlff2d.phonons.stage import NPOINTS, PhononsResult, PhononsWorkflow

#: Γ modes of ``a`` below this frequency (THz) count as acoustic (no relative difference).
ACOUSTIC_THZ = 0.5


@dataclass
class Comparison:
    """Frequency differences of ``b`` relative to ``a`` (THz).

    Attributes
    ----------
    rms_thz, max_thz
        RMS and maximum absolute difference over all q-points and bands of the path.
    gamma
        One dict per Γ mode: irrep (of ``a``), frequencies of ``a`` and ``b``, difference, and
        relative difference ``(b - a) / a`` for optical modes (None for acoustic ones).
    max_optical_rel
        Largest |relative difference| of the optical Γ modes.
    per_band_rms_thz
        RMS difference of each band (bands sorted by frequency at each q).
    """

    rms_thz: float
    max_thz: float
    gamma: list[dict[str, Any]] = field(default_factory=list)
    per_band_rms_thz: list[float] = field(default_factory=list)
    max_optical_rel: float | None = None


def load_phonopy(path: str | Path) -> Any:
    """Load a Phonopy object from a ``phonopy_params.yaml`` or an ``mlff2d phonons`` output folder.

    For a folder, its pristine result is loaded (:meth:`PhononsWorkflow.load`).

    Raises
    ------
    InputError
        If ``path`` is neither a file nor a finished ``mlff2d phonons`` folder.
    """
    p = Path(path)
    if p.is_file():
        return core.load_phonopy_file(p)
    if not p.is_dir():
        raise InputError(f"{p} not found", "pass a phonopy_params.yaml or an `mlff2d phonons` output folder")
    result = cast(PhononsResult, PhononsWorkflow.load(p))
    return core.load_phonopy_file(result.pristine.phonopy_params)


def compare_phonons(
    a: Any, b: Any, npoints: int = NPOINTS
) -> tuple[Comparison, BandStructure, BandStructure]:
    """Bands of two Phonopy objects on the same reduced Γ–M–K–Γ path and their differences."""
    if len(a.primitive) != len(b.primitive):
        raise InputError(
            f"the two results have {len(a.primitive)} and {len(b.primitive)} atoms in the primitive cell",
            "compare the same material",
        )
    ba = core.band_path(a, npoints)
    bb = core.band_path(b, npoints)
    d = bb.frequencies - ba.frequencies
    ga: Modes = core.gamma_modes(a)
    gb: Modes = core.gamma_modes(b, irreps=False)
    gamma = [
        {
            "irrep": lab,
            "a_THz": round(float(fa), 4),
            "b_THz": round(float(fb), 4),
            "diff_THz": round(float(fb - fa), 4),
            "rel_diff": round(float(fb / fa - 1), 5) if fa > ACOUSTIC_THZ else None,
        }
        for lab, fa, fb in zip(ga.labels, ga.frequencies, gb.frequencies, strict=True)
    ]
    rel = [abs(g["rel_diff"]) for g in gamma if g["rel_diff"] is not None]
    comp = Comparison(
        rms_thz=float(np.sqrt(np.mean(d**2))),
        max_thz=float(np.abs(d).max()),
        gamma=gamma,
        per_band_rms_thz=[float(x) for x in np.sqrt(np.mean(d**2, axis=0))],
        max_optical_rel=max(rel) if rel else None,
    )
    return comp, ba, bb
