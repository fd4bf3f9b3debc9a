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
from pathlib import Path
from typing import Any

from ase import Atoms
from ase.calculators.calculator import Calculator

from mlff2d.errors import InputError, SCFError


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
    prepare
        Optional ``prepare(atoms, workdir) -> Calculator`` building the calculator for one
        structure (DFT: k-points from the cell, a run folder per calculation). It may add
        info keys to ``atoms`` (e.g. ``kpts``) that are carried into the label. When None,
        ``calc`` is used for every structure.
    scf_errors
        Exception types of the code that mean "SCF not converged"; :meth:`compute` re-raises
        them as :class:`mlff2d.errors.SCFError`.
    elements
        Elements the calculator has parameters for (``None``: any, as for DFT).
    min_vacuum
        Smallest vacuum along z (Å) of a structure it labels (a DFT profile's ``min_vacuum``);
        ``None``: :data:`mlff2d.structures.build.MIN_VACUUM`, the rule of every command.
    """

    calc: Calculator | None
    source: str
    settings: dict[str, Any] = field(default_factory=dict)
    check: Callable[[Calculator], None] | None = None
    prepare: Callable[[Atoms, Path], Calculator] | None = None
    scf_errors: tuple[type[BaseException], ...] = ()
    elements: tuple[str, ...] | None = None
    min_vacuum: float | None = None

    def check_structure(self, atoms: Atoms, where: str) -> None:
        """Refuse a structure this calculator must not label (:func:`mlff2d.validate.check_structure`).

        The same rule for every calculator: finite positions, no atoms on top of each other, a 2D
        cell with vacuum along z, elements the calculator knows.

        Raises
        ------
        InputError
            Naming ``where``, the value and the rule.
        """
        from mlff2d.validate import check_structure

        by = f"calculator {self.source}"
        check_structure(atoms, where, known=self.elements, known_by=by, min_vacuum=self.min_vacuum)

    def compute(self, atoms: Atoms, workdir: Path) -> Calculator:
        """Run one calculation on ``atoms`` (energy, forces and, if available, stress).

        Parameters
        ----------
        atoms
            The structure; its ``calc`` is set here.
        workdir
            A folder this calculation may use (created only by back ends that need it).

        Returns
        -------
        Calculator
            The calculator holding the results.

        Raises
        ------
        SCFError
            If the self-consistent cycle did not converge.
        InputError
            If the structure breaks a rule of :meth:`check_structure`.
        """
        self.check_structure(atoms, f"structure {atoms.get_chemical_formula()}")
        calc = self.prepare(atoms, Path(workdir)) if self.prepare is not None else self.calc
        atoms.calc = calc
        try:
            atoms.get_potential_energy()
            atoms.get_forces()
            try:
                atoms.get_stress()
            except NotImplementedError:
                pass
        except self.scf_errors as exc:
            hint = "raise maxiter or mix more gently"
            raise SCFError(f"SCF did not converge: {exc}".strip(), hint) from exc
        if self.check is not None:
            self.check(calc)
        return calc

    @property
    def settings_hash(self) -> str:
        """SHA-256 (16 hex digits) of the settings, stable across runs."""
        blob = json.dumps({"source": self.source, **self.settings}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _sw(settings: dict[str, Any]) -> Labeller:
    from mlff2d.reference.sw import SW_ELEMENTS, SWTeacher

    known = {"potential", "maxdelcs"}
    unknown = set(settings) - known
    if unknown:
        raise InputError(f"unknown SW settings {sorted(unknown)}", f"known: {sorted(known)}")
    maxdelcs = tuple(settings.get("maxdelcs", (0.25, 0.35)))
    calc = SWTeacher(potential=settings.get("potential"), maxdelcs=maxdelcs)
    used = {
        "potential": str(settings.get("potential") or "tmd.sw.mod"),
        "maxdelcs": list(maxdelcs),
        "pair_style": "sw/mod",
    }
    return Labeller(calc, "sw-teacher", used, elements=SW_ELEMENTS)


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
