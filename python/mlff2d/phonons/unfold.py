"""Band unfolding of a (defective) supercell onto the primitive Γ–M–K–Γ path.

Phonopy's :class:`phonopy.unfolding.core.Unfolding` (Allen et al., PRB 87, 085322 (2013)) does
the work; this module builds its inputs: the ideal lattice sites of the supercell and the map
from each site to an atom of the defect cell (``None`` for a vacancy).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from ase import Atoms
from numpy.typing import NDArray

from mlff2d.errors import StructureError
from mlff2d.phonons.broadening import broadened_dos
from mlff2d.phonons.results import SpectralMap
from mlff2d.structures.bz import HEX_PATH

logger = logging.getLogger(__name__)


def site_mapping(ideal: Atoms, actual: Atoms, tolerance: float = 0.6) -> list[int | None]:
    """Map each ideal site to the nearest atom of ``actual`` (minimum image), or None.

    Parameters
    ----------
    ideal
        The pristine supercell (same cell as ``actual``).
    actual
        The defect supercell (relaxed).
    tolerance
        Largest distance (Å) between a site and its atom; sites without an atom this close
        are vacancies.

    Raises
    ------
    StructureError
        If an atom of ``actual`` belongs to no site (an interstitial) or to two sites.
    """
    from ase.geometry import get_distances

    _, d = get_distances(ideal.positions, actual.positions, cell=actual.cell, pbc=[1, 1, 0])
    nearest = d.argmin(axis=1)
    mapping: list[int | None] = [int(j) if d[i, j] < tolerance else None for i, j in enumerate(nearest)]
    used = [j for j in mapping if j is not None]
    if len(set(used)) != len(used) or len(used) != len(actual):
        raise StructureError(
            f"{len(actual) - len(set(used))} atoms of the defect cell sit on no lattice site",
            "unfolding supports vacancies and substitutions only",
        )
    return mapping


def fast_unfolding_class() -> type:
    """Return a subclass of phonopy's ``Unfolding`` with a cheaper, equivalent weight sum.

    Phonopy sums phase-shifted eigenvectors over all N translations for every site, touching
    the whole (3 n, 3 n) eigenvector matrix N times per q-point. Sites related by a lattice
    translation get the same squared amplitude (the phases are characters of the translation
    group), so the sum over one site per translation orbit, times N, is the same weight at 1/N
    of the cost. Only the weight sum is replaced; phonopy does everything else.
    """
    from phonopy.unfolding.core import Unfolding

    class FastUnfolding(Unfolding):
        _reps: NDArray[np.int64] | None = None

        def _representatives(self) -> NDArray[np.int64]:
            if self._reps is None:
                seen = np.zeros(len(self._ideal_positions), dtype=bool)
                reps = []
                for j in range(len(seen)):
                    if not seen[j]:
                        reps.append(j)
                        seen[self._index_map_inv[:, j]] = True
                self._reps = np.array(reps, dtype=np.int64)
            return self._reps

        def _get_unfolding_weights(self) -> NDArray[np.float64]:
            q_p = self._qpoints_p[self._q_count]
            q_s = self._qpoints_s[self._q_count]
            diff = q_p - np.dot(q_s, np.linalg.inv(self._supercell_matrix))
            G = self._comm_points[0]
            for G in self._comm_points:  # noqa: B007 - the loop finds G
                d = diff - G
                d -= np.rint(d)
                if (np.abs(d) < 1e-5).all():
                    break
            phases = np.exp(2j * np.pi * np.dot(self._trans_p, G))
            idx = self._atom_mapping[self._index_map_inv[:, self._representatives()]]
            rows = (idx[:, :, None] * 3 + np.arange(3)).reshape(len(phases), -1)
            e = np.tensordot(phases, self._eigvecs[rows], axes=(0, 0)) / self._N
            return self._N * (np.abs(e) ** 2).sum(axis=0)

    return FastUnfolding


def unfold_path(
    phonon: Any,
    ideal: Atoms,
    mapping: list[int | None],
    repeat: tuple[int, int],
    npoints: int,
    reciprocal_primitive: NDArray[np.float64],
) -> tuple[NDArray, NDArray, NDArray, NDArray, list[str]]:
    """Unfolded frequencies and weights along Γ–M–K–Γ.

    Parameters
    ----------
    phonon
        Phonopy object of the supercell (force constants set; unit cell = the supercell).
    ideal
        Ideal (pristine) supercell whose sites define the primitive translations.
    mapping
        Site → atom of ``phonon``'s cell (None = vacancy), from :func:`site_mapping`.
    repeat
        The N×M repetition of the primitive cell in the supercell.
    npoints
        q-points per path segment.
    reciprocal_primitive
        (3, 3) reciprocal lattice of the primitive cell (rows, 1/Å, no 2π), for distances.

    Returns
    -------
    distances
        (n_q,) path length (1/Å).
    frequencies
        (n_q, 3 n_atoms) supercell frequencies (THz).
    weights
        (n_q, 3 n_atoms) unfolding weights (sum over modes at each q = number of primitive
        bands, minus missing vacancy bands).
    tick_distances, tick_labels
        Positions and labels of Γ, M, K, Γ.
    """
    points = [np.array(q) for _, q in HEX_PATH]
    qs, dist, ticks, d0 = [], [], [0.0], 0.0
    for a, b in zip(points[:-1], points[1:], strict=True):
        seg = a + np.linspace(0, 1, npoints)[:, None] * (b - a)
        step = np.linalg.norm((seg - a) @ reciprocal_primitive, axis=1)
        qs.append(seg)
        dist.append(d0 + step)
        d0 += step[-1]
        ticks.append(d0)
    q = np.concatenate(qs)
    smat = np.diag([repeat[0], repeat[1], 1])
    unf = fast_unfolding_class()(phonon, smat, ideal.get_scaled_positions(), mapping, q)
    unf.run()
    logger.info("unfolded %d q-points", len(q))
    return (
        np.concatenate(dist),
        np.asarray(unf.frequencies),
        np.asarray(unf.unfolding_weights),
        np.array(ticks),
        [lab for lab, _ in HEX_PATH],
    )


def spectral_map(
    distances: NDArray,
    frequencies: NDArray,
    weights: NDArray,
    grid: NDArray[np.float64],
    sigma: float,
    tick_distances: NDArray,
    tick_labels: list[str],
) -> SpectralMap:
    """Broaden unfolded modes into A(q, ω) on ``grid`` (THz) with Gaussians of width ``sigma`` (THz).

    Each q-point's modes (``frequencies``, THz) are broadened with their unfolding ``weights``.
    """
    a = np.array([broadened_dos(grid, f, sigma, w) for f, w in zip(frequencies, weights, strict=True)])
    return SpectralMap(
        distances=distances,
        frequencies=grid,
        weights=a,
        tick_distances=tick_distances,
        tick_labels=tick_labels,
    )
