"""Phonopy plumbing shared by the workflows: conversion, relaxation, force constants, spectra.

Frequencies in THz, force constants in eV/Å², displacements in Å.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from numpy.typing import NDArray

from mlff2d.errors import CalculationFailed
from mlff2d.phonons.engines import ForceCache, ForceEngine, compute_force_sets
from mlff2d.phonons.results import DOS, BandStructure, Modes
from mlff2d.structures.bz import HEX_PATH

logger = logging.getLogger(__name__)


def to_phonopy(atoms: Atoms) -> Any:
    """Convert an ASE ``Atoms`` to a ``PhonopyAtoms``."""
    from phonopy.structure.atoms import PhonopyAtoms

    return PhonopyAtoms(
        symbols=atoms.get_chemical_symbols(),
        cell=atoms.cell.array.copy(),
        scaled_positions=atoms.get_scaled_positions(wrap=False),
        masses=atoms.get_masses(),
    )


def from_phonopy(cell: Any) -> Atoms:
    """Convert a ``PhonopyAtoms`` to an ASE ``Atoms`` (periodic in all directions)."""
    return Atoms(
        symbols=cell.symbols,
        cell=cell.cell,
        scaled_positions=cell.scaled_positions,
        masses=cell.masses,
        pbc=True,
    )


def relax(
    atoms: Atoms,
    calculator: Any,
    fmax: float,
    cell: bool,
    steps: int = 500,
    logfile: str | Path | None = None,
) -> Atoms:
    """Relax positions (and the in-plane lattice when ``cell``) keeping the vacuum.

    Parameters
    ----------
    atoms
        Start structure (not modified).
    calculator
        ASE calculator (must give stress when ``cell``).
    fmax
        Force tolerance (eV/Å); with ``cell`` also the stress tolerance via the filter.
    cell
        Relax xx, yy and xy of the cell too (``FrechetCellFilter`` with a 2D mask).
    steps
        Maximum optimiser steps.
    logfile
        Optimiser log file; None for no log.
    """
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    a = atoms.copy()
    a.calc = calculator
    target = FrechetCellFilter(a, mask=[1, 1, 0, 0, 0, 1]) if cell else a
    opt = BFGS(target, logfile=str(logfile) if logfile else None)
    converged = opt.run(fmax=fmax, steps=steps)
    if not converged:
        raise CalculationFailed(
            f"relaxation did not reach fmax={fmax} eV/Å in {steps} steps", "loosen --fmax or check the model"
        )
    out = a.copy()
    out.calc = None
    out.info = dict(atoms.info)
    logger.info(
        "relaxed %s: %d steps, E = %.6f eV", out.get_chemical_formula(), opt.nsteps, a.get_potential_energy()
    )
    return out


def make_phonopy(unitcell: Atoms, supercell: tuple[int, int], symprec: float = 1e-5) -> Any:
    """Build a ``Phonopy`` object for ``unitcell`` in an N×M×1 supercell (unit cell = primitive)."""
    from phonopy import Phonopy

    n, m = supercell
    return Phonopy(
        to_phonopy(unitcell), supercell_matrix=np.diag([n, m, 1]), primitive_matrix="P", symprec=symprec
    )


def produce_force_constants(
    phonon: Any,
    engine: ForceEngine,
    cache_dir: str | Path | None,
    displacement: float = 0.01,
    symmetrize: bool = True,
    progress: bool = True,
) -> int:
    """Finite displacements → forces (engine, cached) → symmetrised force constants.

    Returns
    -------
    int
        The number of displaced supercells evaluated in this call (the rest were cached).
    """
    if engine.provides_force_constants:
        supercell = from_phonopy(phonon.supercell)
        logger.info("force constants of %d atoms from %s", len(supercell), engine.name)
        phonon.force_constants = engine.force_constants(supercell)
        if symmetrize:
            phonon.symmetrize_force_constants(show_drift=False)
        return 0
    phonon.generate_displacements(distance=displacement)
    cells = [from_phonopy(c) for c in phonon.supercells_with_displacements]
    logger.info("%d displaced supercells of %d atoms", len(cells), len(cells[0]))
    cache = ForceCache(cache_dir) if cache_dir is not None else None
    reference = from_phonopy(phonon.supercell)
    forces, n_new = compute_force_sets(engine, cells, cache=cache, progress=progress, reference=reference)
    # remove the residual (drift) force so translational invariance holds on average
    forces -= forces.mean(axis=1, keepdims=True)
    phonon.forces = forces
    phonon.produce_force_constants()
    if symmetrize:
        phonon.symmetrize_force_constants(show_drift=False)
    return n_new


def save_phonopy(phonon: Any, path: str | Path) -> None:
    """Write ``phonopy_params.yaml`` and the force constants as ``force_constants.hdf5`` beside it.

    Without a displacement dataset (the Hessian route) the force constants also go into the
    YAML file. Continue with Phonopy: ``phonopy.load("phonopy_params.yaml",
    force_constants_filename="force_constants.hdf5")``.
    """
    from phonopy.file_IO import write_force_constants_to_hdf5

    path = Path(path)
    has_dataset = phonon.dataset is not None and bool(phonon.dataset)
    phonon.save(path, settings={"force_constants": not has_dataset})
    write_force_constants_to_hdf5(
        phonon.force_constants,
        filename=str(path.parent / "force_constants.hdf5"),
        p2s_map=phonon.primitive.p2s_map,
    )


def load_phonopy_file(path: str | Path) -> Any:
    """Load ``phonopy_params.yaml`` with ``force_constants.hdf5`` from the same folder if present."""
    import phonopy

    path = Path(path)
    fc = path.parent / "force_constants.hdf5"
    kwargs = {"force_constants_filename": str(fc)} if fc.is_file() else {}
    return phonopy.load(path, produce_fc=True, log_level=0, **kwargs)


def band_path(phonon: Any, npoints: int = 51) -> BandStructure:
    """Band structure along Γ–M–K–Γ."""
    from phonopy.phonon.band_structure import get_band_qpoints_and_path_connections

    labels = [lab for lab, _ in HEX_PATH]
    qs, conn = get_band_qpoints_and_path_connections([[q for _, q in HEX_PATH]], npoints=npoints)
    phonon.run_band_structure(qs, path_connections=conn, labels=labels)
    bs = phonon.band_structure
    dist = [np.asarray(d) for d in bs.distances]
    ticks = np.array([dist[0][0]] + [d[-1] for d in dist])
    return BandStructure(
        qpoints=np.concatenate(bs.qpoints),
        distances=np.concatenate(dist),
        frequencies=np.concatenate(bs.frequencies),
        tick_distances=ticks,
        tick_labels=labels,
    )


def frequency_grid(fmin: float, fmax: float, pitch: float = 0.01) -> NDArray[np.float64]:
    """Return a DOS frequency grid (THz) from ``fmin`` to ``fmax`` with ``pitch``."""
    return np.arange(fmin, fmax + pitch / 2, pitch)


def mesh_pdos(
    phonon: Any, mesh: tuple[int, int, int], sigma: float, grid: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-atom, per-direction PDOS on a q mesh with Gaussian smearing.

    Returns
    -------
    grid
        (n_f,) THz.
    pdos
        (n_atoms, 3, n_f) states/THz of the phonopy primitive cell (x, y, z projections);
        the sum over atoms and directions is the total DOS of the cell (integral 3 n_atoms).
    """
    phonon.run_mesh(mesh, is_mesh_symmetry=False, with_eigenvectors=True, is_gamma_center=True)
    phonon.run_projected_dos(
        sigma=sigma,
        freq_min=float(grid[0]),
        freq_max=float(grid[-1]),
        freq_pitch=float(grid[1] - grid[0]),
        xyz_projection=True,
    )
    pd = phonon.projected_dos
    freqs = np.asarray(pd.frequency_points)
    n = len(phonon.primitive)
    return freqs, np.asarray(pd.projected_dos).reshape(n, 3, len(freqs))


def element_dos(
    symbols: list[str], freqs: NDArray[np.float64], pdos: NDArray[np.float64], sigma: float, directions: bool
) -> DOS:
    """Sum a per-atom PDOS (n_atoms, 3, n_f) into a :class:`DOS` per atom of the cell.

    With ``directions`` the partials are ``"<el> xy"`` (in-plane) and ``"<el> z"``.
    """
    n = len(symbols)
    partial: dict[str, NDArray[np.float64]] = {}
    for el in dict.fromkeys(symbols):
        idx = [i for i, s in enumerate(symbols) if s == el]
        if directions:
            partial[f"{el} xy"] = pdos[idx, :2].sum(axis=(0, 1)) / n
            partial[f"{el} z"] = pdos[idx, 2].sum(axis=0) / n
        else:
            partial[el] = pdos[idx].sum(axis=(0, 1)) / n
    return DOS(frequencies=freqs, total=pdos.sum(axis=(0, 1)) / n, partial=partial, sigma=sigma)


def gamma_modes(phonon: Any, irreps: bool = True, tolerance: float = 1e-3) -> Modes:
    """Frequencies (THz) at Γ and, for small cells, their irreducible representations."""
    phonon.run_qpoints([[0, 0, 0]])
    freqs = np.asarray(phonon.qpoints.frequencies[0])
    labels = [""] * len(freqs)
    if irreps:
        try:
            irr = phonon.run_irreps([0, 0, 0], degeneracy_tolerance=tolerance)
            names = getattr(irr, "_ir_labels", None) or []
            for band_set, name in zip(irr.band_indices, names, strict=False):
                for b in band_set:
                    labels[b] = _pretty_irrep(name or "")
        except Exception as exc:  # noqa: BLE001 - phonopy raises generic errors here
            logger.warning("irreps at Γ not identified: %s", exc)
    return Modes(frequencies=freqs, labels=labels)


def _pretty_irrep(name: str) -> str:
    """Phonopy's ``A1'`` / ``E''`` as ``A₁′`` / ``E″``."""
    out = name.replace("''", "″").replace("'", "′")
    return out.replace("1", "₁").replace("2", "₂").replace("g", "g").replace("u", "u")
