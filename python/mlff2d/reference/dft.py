"""DFT back ends for labelling: GPAW, VASP and Quantum ESPRESSO through ASE calculators.

A back end turns a calculator *profile* (a YAML file such as ``training/dft/gpaw_pbe.yaml``)
into a :class:`~mlff2d.reference.registry.Labeller`. The calculator is built per structure,
because the k-point grid follows the cell: an in-plane density in points per Å⁻¹ (2π
included, as in ASE's ``kptdensity``), Γ-centred, one point along the vacuum direction z.

Profile keys (all back ends)::

    calculator: gpaw           # must match --calculator
    source: gpaw-pbe           # dataset `source` tag
    kdensity: 2.5              # in-plane k-point density (points per Å⁻¹)
    min_vacuum: 15.0           # structures with less vacuum along z are rejected (Å; at least
                               # mlff2d.structures.build.MIN_VACUUM, the rule of every calculator)
    parameters: {...}          # passed unchanged to the ASE calculator
    command: null              # VASP / QE: how to run the code (else ASE's configuration)
    pseudo_dir: null           # QE only: folder of the pseudopotentials

Registering a back end is one line in :data:`BACKENDS`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from mlff2d.config import from_dict, to_dict
from mlff2d.errors import CalculationFailed, InputError, SCFError
from mlff2d.reference.registry import CALCULATORS, Labeller
from mlff2d.structures.build import MIN_VACUUM

logger = logging.getLogger(__name__)


@dataclass
class DFTProfile:
    """Settings of a DFT back end (one YAML profile; see the module docstring).

    Attributes
    ----------
    calculator
        Back-end name (``gpaw``, ``vasp``, ``espresso``).
    source
        Dataset ``source`` tag written into every label.
    kdensity
        In-plane k-point density (points per Å⁻¹, 2π included); Γ-centred, 1 point along z.
    parameters
        Keyword arguments of the ASE calculator, passed unchanged (``kpts`` is set per structure).
    min_vacuum
        Smallest accepted vacuum along z (Å); at least :data:`mlff2d.structures.build.MIN_VACUUM`.
    command
        Command that runs the code (VASP, QE); None uses ASE's configuration.
    pseudo_dir
        Pseudopotential folder (QE).
    """

    calculator: str
    source: str
    kdensity: float = 2.5
    parameters: dict[str, Any] = field(default_factory=dict)
    min_vacuum: float = 15.0
    command: str | None = None
    pseudo_dir: str | None = None

    def __post_init__(self) -> None:
        if self.kdensity <= 0:
            raise InputError(f"kdensity = {self.kdensity} must be > 0", "points per Å⁻¹, e.g. 2.5")
        if self.min_vacuum < MIN_VACUUM:
            raise InputError(
                f"min_vacuum = {self.min_vacuum} Å is below the 2D rule of every calculator "
                f"({MIN_VACUUM:g} Å)",
                f"set min_vacuum ≥ {MIN_VACUUM:g}",
            )
        if "kpts" in self.parameters:
            raise InputError(
                "profile parameters must not set kpts", "k-points come from kdensity per structure"
            )


def kpoint_grid(atoms: Atoms, kdensity: float) -> tuple[int, int, int]:
    """Γ-centred Monkhorst–Pack grid of a 2D cell: ``ceil(kdensity · |b_i|)`` in-plane, 1 along z.

    Parameters
    ----------
    atoms
        A 2D cell (periodic in x, y; vacuum along the third cell vector).
    kdensity
        Points per Å⁻¹, with ``|b_i| = 2π / d_i`` the reciprocal vector lengths (Å⁻¹).

    Returns
    -------
    tuple of int
        ``(n1, n2, 1)``.
    """
    rec = 2 * np.pi * np.linalg.norm(atoms.cell.reciprocal(), axis=1)
    n1, n2 = (max(1, math.ceil(kdensity * float(b) - 1e-6)) for b in rec[:2])
    return (n1, n2, 1)


def _check_finite(calc: Calculator) -> None:
    for name in ("energy", "forces"):
        if not np.all(np.isfinite(calc.results.get(name, np.nan))):
            raise CalculationFailed(f"{name} is not finite", "inspect the calculation's text output")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------- back ends


def _gpaw_calc(profile: DFTProfile, atoms: Atoms, workdir: Path, kpts: tuple[int, int, int]) -> Calculator:
    from gpaw import GPAW

    workdir.mkdir(parents=True, exist_ok=True)
    return GPAW(**profile.parameters, kpts={"size": kpts, "gamma": True}, txt=str(workdir / "gpaw.txt"))


def _gpaw_scf_errors() -> tuple[type[BaseException], ...]:
    try:
        from gpaw import KohnShamConvergenceError
    except ImportError:
        raise InputError("GPAW is not installed", "make install, or pip install -e '.[dft]'") from None

    return (KohnShamConvergenceError,)


def _vasp_calc(profile: DFTProfile, atoms: Atoms, workdir: Path, kpts: tuple[int, int, int]) -> Calculator:
    from ase.calculators.vasp import Vasp

    extra = {"command": profile.command} if profile.command else {}
    return Vasp(directory=str(workdir), kpts=kpts, gamma=True, **extra, **profile.parameters)


def _vasp_check(calc: Calculator) -> None:
    if getattr(calc, "converged", True) is False:
        raise SCFError("VASP electronic SCF did not converge (NELM reached)", "raise NELM or change ALGO")
    _check_finite(calc)


def _espresso_calc(
    profile: DFTProfile, atoms: Atoms, workdir: Path, kpts: tuple[int, int, int]
) -> Calculator:
    from ase.calculators.espresso import Espresso, EspressoProfile

    extra: dict[str, Any] = {}
    if profile.command or profile.pseudo_dir:
        if not (profile.command and profile.pseudo_dir):
            raise InputError("QE profile needs both command and pseudo_dir", "or neither (ASE configuration)")
        extra["profile"] = EspressoProfile(command=profile.command, pseudo_dir=profile.pseudo_dir)
    return Espresso(directory=str(workdir), kpts=kpts, koffset=(0, 0, 0), **extra, **profile.parameters)


def _espresso_validate(profile: DFTProfile) -> None:
    """Fail at start (not once per structure) when pw.x is not configured."""
    from ase.calculators.calculator import BadConfiguration
    from ase.calculators.espresso import Espresso

    if profile.command and profile.pseudo_dir:
        return
    try:
        Espresso(directory=".")
    except BadConfiguration:
        raise InputError(
            "Quantum ESPRESSO is not configured",
            "set command and pseudo_dir in the profile, or ASE's [espresso] configuration",
        ) from None


def _espresso_check(calc: Calculator) -> None:
    out = Path(calc.directory) / "espresso.pwo"
    if out.is_file() and "convergence NOT achieved" in out.read_text(errors="replace"):
        raise SCFError(
            "QE SCF did not converge (electron_maxstep reached)", "raise electron_maxstep or mixing_beta"
        )
    _check_finite(calc)


@dataclass(frozen=True)
class Backend:
    """How one DFT code is driven: the calculator builder, its SCF errors, checks, version."""

    build: Callable[[DFTProfile, Atoms, Path, tuple[int, int, int]], Calculator]
    scf_errors: Callable[[], tuple[type[BaseException], ...]] = tuple
    check: Callable[[Calculator], None] = _check_finite
    distribution: str | None = None
    validate: Callable[[DFTProfile], None] | None = None


#: back-end name -> how to drive it (one line per code).
BACKENDS: dict[str, Backend] = {
    "gpaw": Backend(_gpaw_calc, _gpaw_scf_errors, _check_finite, "gpaw"),
    "vasp": Backend(_vasp_calc, tuple, _vasp_check),
    "espresso": Backend(_espresso_calc, tuple, _espresso_check, validate=_espresso_validate),
}

#: Settings used for ``--calculator gpaw`` without a profile (= training/dft/gpaw_pbe.yaml).
GPAW_PBE_DEFAULT: dict[str, Any] = {
    "calculator": "gpaw",
    "source": "gpaw-pbe",
    "kdensity": 2.5,
    "min_vacuum": 15.0,
    "parameters": {
        "mode": {"name": "pw", "ecut": 400.0},
        "xc": "PBE",
        "occupations": {"name": "fermi-dirac", "width": 0.05},
        "spinpol": False,
        "convergence": {"energy": 0.0005, "density": 1.0e-4, "eigenstates": 4.0e-8},
        "maxiter": 200,
    },
}


def make_labeller(name: str, settings: dict[str, Any]) -> Labeller:
    """Labeller of the DFT back end ``name`` from a profile mapping.

    Parameters
    ----------
    name
        ``gpaw``, ``vasp`` or ``espresso``.
    settings
        The profile (see :class:`DFTProfile`); empty means the built-in default (GPAW only).

    Raises
    ------
    InputError
        If the profile is missing, names another back end, or has unknown keys.
    """
    if not settings:
        if name != "gpaw":
            raise InputError(
                f"calculator '{name}' needs a profile", f"--profile training/dft/{name}_pbe.yaml"
            )
        settings = GPAW_PBE_DEFAULT
    settings = {"calculator": name, **settings}
    profile = from_dict(DFTProfile, settings, where=f"{name} profile")
    if profile.calculator != name:
        raise InputError(
            f"profile is for '{profile.calculator}', not '{name}'", f"use --calculator {profile.calculator}"
        )
    backend = BACKENDS[name]
    if backend.validate is not None:
        backend.validate(profile)
    version = _version(backend.distribution) if backend.distribution else "external"

    def prepare(atoms: Atoms, workdir: Path) -> Calculator:
        kpts = kpoint_grid(atoms, profile.kdensity)
        atoms.info["kpts"] = "x".join(map(str, kpts))
        atoms.info["code_version"] = f"{name} {version}"
        logger.info("%s: %d atoms, k-points %s", name, len(atoms), atoms.info["kpts"])
        return backend.build(profile, atoms, workdir, kpts)

    used = to_dict(profile)
    for key in ("command", "pseudo_dir", "min_vacuum"):  # these do not change the numbers: not hashed
        used.pop(key, None)
    return Labeller(
        None,
        profile.source,
        used,
        check=backend.check,
        prepare=prepare,
        scf_errors=backend.scf_errors(),
        min_vacuum=profile.min_vacuum,
    )


for _name in BACKENDS:
    CALCULATORS[_name] = lambda settings, _n=_name: make_labeller(_n, settings)
