"""The force-engine interface and its registry of back ends.

A force engine answers one question: "the forces (eV/Å) of this list of structures". Engines
register under a name in :data:`ENGINES`; :func:`make_engine` builds one by name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from ase import Atoms
from numpy.typing import NDArray

from mlff2d.errors import InputError

#: name -> engine class. The registry of force back ends.
ENGINES: dict[str, type[ForceEngine]] = {}


def register(cls: type[ForceEngine]) -> type[ForceEngine]:
    """Class decorator adding a force engine to :data:`ENGINES` under ``cls.name``."""
    ENGINES[cls.name] = cls
    return cls


class ForceEngine(ABC):
    """Computes forces (eV/Å) for a list of structures."""

    name: ClassVar[str] = ""
    #: True for engines that give force constants directly (:meth:`force_constants`).
    provides_force_constants: ClassVar[bool] = False

    @abstractmethod
    def compute(
        self, structures: Sequence[Atoms], reference: Atoms | None = None
    ) -> list[NDArray[np.float64]]:
        """Compute the forces of each structure: a list of arrays of shape (n_atoms, 3) in eV/Å.

        ``reference`` is the undisplaced supercell, when the structures are displacements of it;
        engines may use it to go faster (the results are the same).
        """

    @property
    def preferred_chunk(self) -> int:
        """How many structures to hand to :meth:`compute` at once (for caching and progress)."""
        return 1

    def describe(self) -> dict[str, Any]:
        """Describe the engine in plain types for ``summary.yaml``."""
        return {"engine": self.name}

    def force_constants(self, atoms: Atoms) -> NDArray[np.float64]:
        """Force constants (n, n, 3, 3) in eV/Å² of a periodic cell, for engines that can."""
        raise NotImplementedError(f"engine {self.name!r} gives forces, not force constants")


def make_engine(name: str, **kwargs: Any) -> ForceEngine:
    """Build the engine registered under ``name`` with ``kwargs``."""
    if name not in ENGINES:
        raise InputError(f"unknown force engine {name!r}", f"choose one of {sorted(ENGINES)}")
    return ENGINES[name](**kwargs)
