"""The per-displacement force cache: one ``.npy`` file per structure, so interrupted runs resume."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from numpy.typing import NDArray

from mlff2d.phonons.engines.base import ForceEngine
from mlff2d.runinfo import atomic_path
from mlff2d.structures.io import structure_key

logger = logging.getLogger(__name__)


class ForceCache:
    """One ``<key>.npy`` file of forces (eV/Å) per structure in ``folder``; atomic writes.

    The key is :func:`mlff2d.structures.io.structure_key` of the structure.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, atoms: Atoms) -> Path:
        """Return the cache file of ``atoms``."""
        return self.folder / f"{structure_key(atoms)}.npy"

    def get(self, atoms: Atoms) -> NDArray[np.float64] | None:
        """Return the cached forces of ``atoms`` or None."""
        p = self.path(atoms)
        if not p.is_file():
            return None
        f = np.load(p)
        return f if f.shape == (len(atoms), 3) else None

    def put(self, atoms: Atoms, forces: NDArray[np.float64]) -> None:
        """Store ``forces`` of ``atoms`` atomically."""
        with atomic_path(self.path(atoms)) as tmp:
            np.save(tmp, np.asarray(forces, dtype=np.float64))


def compute_force_sets(
    engine: ForceEngine,
    structures: Sequence[Atoms],
    cache: ForceCache | None = None,
    progress: bool = True,
    description: str = "displacements",
    on_chunk: Callable[[int], None] | None = None,
    reference: Atoms | None = None,
) -> tuple[NDArray[np.float64], int]:
    """Compute the forces of all ``structures``, taking cached ones from ``cache``.

    Parameters
    ----------
    engine
        The force back end.
    structures
        Displaced supercells, all with the same number of atoms.
    cache
        Where finished displacements are stored; None disables caching.
    progress
        Show a progress bar.
    description
        Label of the progress bar.
    on_chunk
        Called with the number of structures computed so far after every chunk (tests use it
        to interrupt a run).
    reference
        The undisplaced supercell (lets the MACE engine use its exact local route).

    Returns
    -------
    forces
        Array of shape (n_structures, n_atoms, 3), eV/Å.
    n_computed
        How many structures were evaluated (the rest came from the cache).
    """
    n = len(structures)
    forces: list[NDArray[np.float64] | None] = [None] * n
    if cache is not None:
        for i, a in enumerate(structures):
            forces[i] = cache.get(a)
    todo = [i for i in range(n) if forces[i] is None]
    if n - len(todo):
        logger.info("%d of %d %s taken from the cache", n - len(todo), n, description)
    from rich.progress import Progress

    done = 0
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(description, total=n, completed=n - len(todo))
        while todo:
            k = max(1, engine.preferred_chunk)
            chunk, todo = todo[:k], todo[k:]
            result = engine.compute([structures[i] for i in chunk], reference=reference)
            for i, f in zip(chunk, result, strict=True):
                forces[i] = f
                if cache is not None:
                    cache.put(structures[i], f)
            done += len(chunk)
            bar.update(task, advance=len(chunk))
            if on_chunk is not None:
                on_chunk(done)
    return np.array(forces, dtype=np.float64), done
