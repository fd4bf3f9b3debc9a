"""Typed phonon results: dataclasses of arrays that round-trip through ``.npz`` + ``.json``.

Frequencies are in THz, DOS in states/THz (normalisation stated per object), distances along
a band path in Phonopy's units (2π/Å is not applied: reciprocal Å).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from mlff2d.runinfo import atomic_write_text

T = TypeVar("T")


def _save(obj: Any, path: str | Path) -> Path:
    """Write the array fields of a dataclass to ``path.npz`` and the rest to ``path.json``."""
    p = Path(path).with_suffix("")
    arrays, meta = {}, {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, np.ndarray):
            arrays[f.name] = v
        elif isinstance(v, dict) and v and all(isinstance(x, np.ndarray) for x in v.values()):
            for k, x in v.items():
                arrays[f"{f.name}::{k}"] = x
            meta[f"{f.name}::keys"] = list(v)
        else:
            meta[f.name] = v
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(p.with_suffix(".npz"))
    meta["__type__"] = type(obj).__name__
    atomic_write_text(p.with_suffix(".json"), json.dumps(meta, indent=1))
    return p.with_suffix(".npz")


def _load(cls: type[T], path: str | Path) -> T:
    """Read a dataclass written by :func:`_save`."""
    p = Path(path).with_suffix("")
    meta = json.loads(p.with_suffix(".json").read_text())
    kwargs: dict[str, Any] = {}
    with np.load(p.with_suffix(".npz"), allow_pickle=False) as data:
        for f in fields(cls):
            if f.name in data.files:
                kwargs[f.name] = data[f.name]
            elif f"{f.name}::keys" in meta:
                kwargs[f.name] = {k: data[f"{f.name}::{k}"] for k in meta[f"{f.name}::keys"]}
            elif f.name in meta:
                kwargs[f.name] = meta[f.name]
    return cls(**kwargs)


class _IO:
    def write(self, path: str | Path) -> Path:
        """Write to ``path`` (``.npz`` arrays + ``.json`` metadata); returns the ``.npz`` path."""
        return _save(self, path)

    @classmethod
    def read(cls, path: str | Path):  # noqa: ANN206
        """Read an object written by :meth:`write`."""
        return _load(cls, path)

    def __str__(self) -> str:
        parts = []
        for k, v in asdict(self).items():
            if isinstance(v, np.ndarray):
                parts.append(f"{k}={v.shape}")
            elif isinstance(v, dict):
                parts.append(f"{k}={{{', '.join(v)}}}")
            else:
                parts.append(f"{k}={v!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


@dataclass(repr=False)
class BandStructure(_IO):
    """Frequencies along a path.

    Attributes
    ----------
    qpoints
        (n_q, 3) reduced coordinates of the primitive reciprocal lattice.
    distances
        (n_q,) path length (1/Å).
    frequencies
        (n_q, n_bands) THz; imaginary modes are negative.
    tick_distances
        (n_ticks,) path length at the labelled points.
    tick_labels
        Labels at the ticks, e.g. ``["Γ", "M", "K", "Γ"]``.
    """

    qpoints: NDArray[np.float64]
    distances: NDArray[np.float64]
    frequencies: NDArray[np.float64]
    tick_distances: NDArray[np.float64]
    tick_labels: list[str] = field(default_factory=list)


@dataclass(repr=False)
class DOS(_IO):
    """Total and partial densities of states on one frequency grid.

    Attributes
    ----------
    frequencies
        (n_f,) THz.
    total
        (n_f,) states/THz per atom (integrates to 3).
    partial
        Name → (n_f,) states/THz per atom of the whole cell (partials sum to ``total``);
        names are elements (``"W"``) or element and direction (``"Se xy"``, ``"Se z"``).
    sigma
        Gaussian smearing (THz); None for the tetrahedron method.
    """

    frequencies: NDArray[np.float64]
    total: NDArray[np.float64]
    partial: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    sigma: float | None = None


@dataclass(repr=False)
class Modes(_IO):
    """Modes at one q-point.

    Attributes
    ----------
    frequencies
        (n_modes,) THz.
    labels
        Irreducible representation of each mode ("" where unknown).
    ipr
        (n_modes,) inverse participation ratio (1/N delocalised ... 1 on one atom), or empty.
    defect_weight
        (n_modes,) fraction of each mode's squared amplitude on atoms within the localisation
        radius of the defect, or empty.
    """

    frequencies: NDArray[np.float64]
    labels: list[str] = field(default_factory=list)
    ipr: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    defect_weight: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))


@dataclass(repr=False)
class SpectralMap(_IO):
    """Unfolded spectral function A(q, ω) along a path.

    Attributes
    ----------
    distances
        (n_q,) path length (1/Å).
    frequencies
        (n_f,) THz grid.
    weights
        (n_q, n_f) spectral weight (states/THz per primitive cell).
    tick_distances, tick_labels
        As in :class:`BandStructure`.
    """

    distances: NDArray[np.float64]
    frequencies: NDArray[np.float64]
    weights: NDArray[np.float64]
    tick_distances: NDArray[np.float64]
    tick_labels: list[str] = field(default_factory=list)


@dataclass(repr=False)
class ShellPDOS(_IO):
    """Local PDOS in shells of distance from the defect centre.

    Attributes
    ----------
    frequencies
        (n_f,) THz.
    edges
        (n_shells + 1,) shell boundaries (Å).
    pdos
        (n_shells, n_f) states/THz summed over the atoms of each shell (shells sum to the
        total DOS of the supercell).
    counts
        (n_shells,) atoms in each shell.
    """

    frequencies: NDArray[np.float64]
    edges: NDArray[np.float64]
    pdos: NDArray[np.float64]
    counts: NDArray[np.int64]
