"""The ``symmetrix`` force engine: a MACE model through Symmetrix-XL's ASE calculator.

One structure per call, like :class:`~.calculator.ASEEngine`; the calculator keeps its neighbour
list between displacements (0.5 Å skin), so a displaced supercell costs one evaluation of
Symmetrix-XL's specialised kernels (:mod:`mlff2d.training.symmetrix`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlff2d.phonons.engines.base import register
from mlff2d.phonons.engines.calculator import ASEEngine


@register
class SymmetrixEngine(ASEEngine):
    """A MACE model evaluated by Symmetrix-XL, one structure at a time.

    Parameters
    ----------
    model
        The mace-torch ``*.model`` file (its ``<model>.symmetrix/`` bundle is prepared if
        missing), or ``None`` with ``calculator``.
    calculator
        A ready Symmetrix-XL ASE calculator.
    dtype
        Precision of the evaluation.
    """

    name = "symmetrix"

    def __init__(
        self, model: str | Path | None = None, calculator: Any = None, dtype: str = "float64"
    ) -> None:
        if calculator is None:
            from mlff2d.training.symmetrix import symmetrix_calculator

            if model is None:
                from mlff2d.errors import ModelError

                raise ModelError(
                    "the symmetrix engine needs a model file", "pass --model path/to/model.model"
                )
            calculator = symmetrix_calculator(model, dtype)  # type: ignore[arg-type]
        super().__init__(calculator)
        self.dtype = dtype

    def describe(self) -> dict[str, Any]:  # noqa: D102
        from mlff2d.training.symmetrix import symmetrix_version

        return {"engine": self.name, "symmetrix_xl": symmetrix_version(), "dtype": self.dtype}
