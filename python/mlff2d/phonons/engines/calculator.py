"""Force engines that call an ASE calculator once per structure (``ase``, ``lammps``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from numpy.typing import NDArray

from mlff2d.phonons.engines.base import ForceEngine, register


@register
class ASEEngine(ForceEngine):
    """Any ASE calculator, called once per structure.

    Parameters
    ----------
    calculator
        The ASE calculator; it is attached to a copy of each structure.
    """

    name = "ase"

    def __init__(self, calculator: Any) -> None:
        self.calculator = calculator

    def compute(  # noqa: D102
        self, structures: Sequence[Atoms], reference: Atoms | None = None
    ) -> list[NDArray[np.float64]]:
        out = []
        for atoms in structures:
            a = atoms.copy()
            a.calc = self.calculator
            out.append(np.asarray(a.get_forces(), dtype=np.float64).copy())
        return out

    def describe(self) -> dict[str, Any]:  # noqa: D102
        return {"engine": self.name, "calculator": type(self.calculator).__name__}


@register
class LammpsEngine(ASEEngine):
    """The SW teacher through the LAMMPS library, serially (``pair_style sw/mod``)."""

    name = "lammps"

    def __init__(self, potential: str | Path | None = None) -> None:
        from mlff2d.reference.sw import SWTeacher

        super().__init__(SWTeacher(potential=potential))
