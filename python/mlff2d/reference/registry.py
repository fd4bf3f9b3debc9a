"""Registry of labelling calculators: name -> factory building an ASE calculator from settings.

Each factory takes a settings mapping (the calculator profile, e.g. from
``training/dft/gpaw_pbe.yaml``) and returns a :class:`Labeller`: the calculator, the
settings actually used (these are hashed and stored with every label) and the ``source``
tag written into datasets. DFT back ends add themselves to :data:`CALCULATORS`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ase.calculators.calculator import Calculator

from mlff2d.errors import InputError


@dataclass
class Labeller:
    """A ready calculator plus what identifies its labels.

    Attributes
    ----------
    calc
        The ASE calculator.
    source
        Dataset ``source`` tag, e.g. ``"sw-teacher"`` or ``"gpaw-pbe"``.
    settings
        Everything that changes the numbers (hashed into the label key).
    check
        Optional callable run after each calculation (e.g. SCF convergence); raises
        :class:`mlff2d.errors.SCFError` or :class:`mlff2d.errors.CalculationFailed`.
    """

    calc: Calculator
    source: str
    settings: dict[str, Any] = field(default_factory=dict)
    check: Callable[[Calculator], None] | None = None

    @property
    def settings_hash(self) -> str:
        """SHA-256 (16 hex digits) of the settings, stable across runs."""
        blob = json.dumps({"source": self.source, **self.settings}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _sw(settings: dict[str, Any]) -> Labeller:
    from mlff2d.reference.sw import SWTeacher

    known = {"potential", "maxdelcs"}
    unknown = set(settings) - known
    if unknown:
        raise InputError(f"unknown SW settings {sorted(unknown)}", f"known: {sorted(known)}")
    maxdelcs = tuple(settings.get("maxdelcs", (0.25, 0.35)))
    calc = SWTeacher(potential=settings.get("potential"), maxdelcs=maxdelcs)
    used = {"potential": str(settings.get("potential") or "tmd.sw.mod"), "maxdelcs": list(maxdelcs),
            "pair_style": "sw/mod"}
    return Labeller(calc, "sw-teacher", used)


#: name -> factory(settings) -> Labeller.
CALCULATORS: dict[str, Callable[[dict[str, Any]], Labeller]] = {"sw": _sw}


def get_labeller(name: str, settings: dict[str, Any] | None = None) -> Labeller:
    """Build the labeller ``name`` (``"sw"``, ``"gpaw"``, ...) from a settings mapping.

    Raises
    ------
    InputError
        If no calculator of that name is registered.
    """
    _load_optional_backends()
    if name not in CALCULATORS:
        raise InputError(f"unknown calculator '{name}'", f"use one of {sorted(CALCULATORS)}")
    return CALCULATORS[name](dict(settings or {}))


def _load_optional_backends() -> None:
    """Import modules that register further back ends (DFT), if present."""
    import importlib

    for mod in ("mlff2d.reference.dft",):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
