"""Reference calculators: the Stillinger–Weber teacher (LAMMPS) and DFT back ends."""

from __future__ import annotations

from mlff2d.reference.sw import SWTeacher

__all__ = ["SWTeacher"]
