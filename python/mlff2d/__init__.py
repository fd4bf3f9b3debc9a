"""mlff2d: machine-learned force fields (MACE) for defect physics in 2D semiconductors.

The library is organised by stage, following the flow of data::

    structures -> reference/labeling -> training -> lammps -> phonons / dynamics -> report

Each stage is a subpackage; the command-line interface (``mlff2d <command>``) is a thin
layer over it (see :mod:`mlff2d.cli`).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
