"""Structures: 2H MX2 monolayers, supercells, point defects, strain and rattling."""

from __future__ import annotations

from mlff2d.structures.build import (
    MATERIALS,
    Material,
    check_2d,
    monolayer,
    parse_formula,
    supercell,
)
from mlff2d.structures.defects import DEFECTS, defect_names, make_defect, parse_defect
from mlff2d.structures.io import read_structure, species_order, structure_key, write_structure
from mlff2d.structures.perturb import rattle, strain

__all__ = [
    "DEFECTS",
    "MATERIALS",
    "Material",
    "check_2d",
    "defect_names",
    "make_defect",
    "monolayer",
    "parse_defect",
    "parse_formula",
    "rattle",
    "read_structure",
    "species_order",
    "strain",
    "structure_key",
    "supercell",
    "write_structure",
]
