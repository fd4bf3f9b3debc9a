"""Harmonic phonons with Phonopy: force engines, pristine and defect computations, analysis.

:mod:`.stage` (settings, typed results and the workflows of ``mlff2d phonons`` and
``phonons compare``), :mod:`.engines` (force engines and the per-displacement cache),
:mod:`.compute` (``PristinePhonons``, ``DefectPhonons``), :mod:`.core` (Phonopy plumbing),
:mod:`.unfold` (band unfolding), :mod:`.local` (IPR, radial local PDOS), :mod:`.compare`,
:mod:`.plots`, :mod:`.results` (npz + json files) and :mod:`.commands` (the CLI).

The workflow classes are imported on first use, so importing the package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_STAGE = (
    "CellPhononsResult",
    "CompareResult",
    "CompareSettings",
    "CompareWorkflow",
    "DefectPhononsResult",
    "PhononsResult",
    "PhononsSettings",
    "PhononsWorkflow",
    "PristinePhononsResult",
)

__all__ = list(_STAGE)


def __getattr__(name: str) -> Any:
    if name in _STAGE:
        return getattr(importlib.import_module("mlff2d.phonons.stage"), name)
    raise AttributeError(f"module 'mlff2d.phonons' has no attribute {name!r}")
