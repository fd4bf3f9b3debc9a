"""The Symmetrix-XL route: a MACE model evaluated by symmetrix-xl's specialised CPU kernels.

`symmetrix-xl <https://pypi.org/project/symmetrix-xl/>`_ (MIT) converts a mace-torch model to
a compact JSON model and evaluates it with native Kokkos/OpenMP code, part of which is C++
generated from the model and compiled once (``c++`` at run time). Its ASE calculator gives the
same energies and forces as mace-torch's ``MACECalculator`` (to ~1e-9 relative in float64) at
a fraction of the time and memory.

A model's Symmetrix files live in a *bundle* folder next to the model file,
``<model>.symmetrix/``: the converted ``model.json``, the compiled kernels (``jit/``, a private
Symmetrix JIT cache) and ``card.json`` (the source model's hash, the prepared precisions and
how long each compile took, or why the model does not convert). ``mlff2d export --symmetrix``
prepares it (:func:`prepare_bundle`); the ASE evaluations (:func:`ase_calculator`) use it when
it is there and fall back to mace-torch otherwise, with a log line saying which route runs and
why. Nothing is compiled implicitly: ``route="auto"`` never compiles.

Symmetrix-XL takes two-interaction MACE models with ``max_ell = 3`` and ``correlation = 3``
(and single-layer models with an invariant readout); it refuses others when converting, and
the refusal is recorded in the card.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from mlff2d.errors import CalculationFailed, InputError, ModelError
from mlff2d.runinfo import atomic_write_text, file_hash

logger = logging.getLogger(__name__)

Dtype = Literal["float64", "float32"]
Route = Literal["auto", "symmetrix", "mace-torch"]
#: ``speed`` keeps Symmetrix's throughput plan and compiles one kernel library per precision
#: (~10 s for the GPAW architecture); ``capacity`` (Symmetrix's default) also compiles a
#: memory-lean M0 module, which ran past Symmetrix's 600 s compile limit on 2 cores even for a
#: 4-channel model, so mlff2d uses ``speed``.
Profile = Literal["speed", "capacity"]
BUNDLE_SUFFIX = ".symmetrix"
#: Grid points of Symmetrix's radial splines (its default is 256). With 1,024 the phonon frequencies
#: of a 2-layer model equal mace-torch's to 3e-6 THz (256: 6e-4 THz), for ~50 MB more at load.
SPLINE_POINTS = 1024
PIP_PACKAGE = "symmetrix-xl"


def symmetrix_version() -> str | None:
    """The installed symmetrix-xl version, or ``None`` if it is not installed."""
    try:
        return metadata.version(PIP_PACKAGE)
    except metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class RouteChoice:
    """Which engine evaluates a MACE model, and why.

    Attributes
    ----------
    route
        ``"symmetrix"`` or ``"mace-torch"``.
    reason
        One line for the log and the run summary.
    """

    route: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        """Plain types for ``summary.yaml``."""
        return {"route": self.route, "reason": self.reason}


@dataclass(frozen=True)
class Bundle:
    """The Symmetrix files of one mace-torch model file (``<model>.symmetrix/``).

    Attributes
    ----------
    source
        The mace-torch ``*.model`` file.
    folder
        The bundle folder.
    """

    source: Path
    folder: Path

    @classmethod
    def of(cls, model: str | Path) -> Bundle:
        """The bundle of ``model`` (it may not exist yet)."""
        src = Path(model)
        return cls(src, src.with_name(src.name + BUNDLE_SUFFIX))

    @property
    def model_json(self) -> Path:
        """The converted compact Symmetrix model."""
        return self.folder / "model.json"

    @property
    def jit_dir(self) -> Path:
        """The private JIT cache holding the compiled kernels."""
        return self.folder / "jit"

    @property
    def card_path(self) -> Path:
        """``card.json``: source hash, prepared precisions, compile times, refusal."""
        return self.folder / "card.json"

    def card(self) -> dict[str, Any]:
        """The card, or ``{}`` if the bundle was never written."""
        if not self.card_path.is_file():
            return {}
        return json.loads(self.card_path.read_text())

    def write_card(self, card: dict[str, Any]) -> None:
        """Write ``card`` atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.card_path, json.dumps(card, indent=1) + "\n")

    def current_card(self) -> dict[str, Any]:
        """The card if it describes the model file as it is now, else a fresh one."""
        sha = file_hash(self.source, 64)
        card = self.card()
        fresh = {
            "source_model": self.source.name,
            "source_model_sha256": sha,
            "symmetrix_xl": symmetrix_version(),
            "spline_points": SPLINE_POINTS,
        }
        if all(card.get(k) == v for k, v in fresh.items() if k != "source_model"):
            return card
        return fresh | {"prepared": {}}


@contextmanager
def jit_cache(folder: Path) -> Iterator[None]:
    """Point Symmetrix's JIT cache at ``folder`` (created private, mode 0700) for a block."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)  # Symmetrix refuses a cache that others can write
    old = os.environ.get("SYMMETRIX_JIT_CACHE")
    os.environ["SYMMETRIX_JIT_CACHE"] = str(folder.resolve())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SYMMETRIX_JIT_CACHE", None)
        else:
            os.environ["SYMMETRIX_JIT_CACHE"] = old


def convert(model: str | Path, output: str | Path) -> Path:
    """Convert a mace-torch model to Symmetrix's compact JSON (all of its elements).

    Radial functions become splines of :data:`SPLINE_POINTS` points.

    Parameters
    ----------
    model
        mace-torch ``*.model`` file.
    output
        The JSON file to write.

    Raises
    ------
    ModelError
        If symmetrix-xl is not installed or refuses the architecture (its message).
    """
    if symmetrix_version() is None:
        raise ModelError(f"{PIP_PACKAGE} is not installed", f"pip install {PIP_PACKAGE}")
    from symmetrix.extract_mace_data import extract_mace_data

    try:
        data = extract_mace_data(
            str(model), species=[], head=None, num_spline_points=SPLINE_POINTS, radial_format="compact"
        )
    except (RuntimeError, ValueError, IndexError, KeyError) as exc:
        raise ModelError(
            f"Symmetrix-XL does not take {model}: {exc}",
            "it takes 2-layer MACE with max_ell 3 and correlation 3; mace-torch evaluates this model",
        ) from None
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(data, separators=(",", ":")) + "\n")
    return out


def _make_calculator(bundle: Bundle, dtype: Dtype, profile: Profile) -> Any:
    from symmetrix import Symmetrix

    os.environ.setdefault("OMP_PROC_BIND", "false")  # OpenMP's default; Kokkos warns when it is unset
    with jit_cache(bundle.jit_dir):
        return Symmetrix(str(bundle.model_json), dtype=dtype, execution_profile=profile)


def prepare_bundle(
    model: str | Path, dtypes: tuple[Dtype, ...] = ("float64",), profile: Profile = "speed"
) -> Bundle:
    """Convert ``model`` and compile its Symmetrix kernels once, into ``<model>.symmetrix/``.

    Already prepared precisions of the same model file are kept (nothing recompiles). A model
    that Symmetrix-XL refuses gets a card with the reason and no ``model.json``.

    Parameters
    ----------
    model
        mace-torch ``*.model`` file.
    dtypes
        Precisions to compile kernels for.
    profile
        Symmetrix execution profile (``speed``: one kernel library per precision).

    Returns
    -------
    Bundle
        The prepared bundle.

    Raises
    ------
    ModelError
        If symmetrix-xl is not installed or refuses the model (the card records it).
    CalculationFailed
        If the kernels do not compile.
    """
    bundle = Bundle.of(model)
    card = bundle.current_card()
    if card.get("refused"):
        raise ModelError(card["refused"], "mace-torch evaluates this model")
    if not card.get("converted") or not bundle.model_json.is_file():
        logger.info("converting %s for Symmetrix-XL (about a minute for 2-layer models)", bundle.source.name)
        try:
            t0 = time.perf_counter()
            convert(model, bundle.model_json)
        except ModelError as exc:
            bundle.write_card(card | {"refused": exc.message})
            raise
        card |= {"converted": True, "convert_s": round(time.perf_counter() - t0, 1)}
        bundle.write_card(card)
    for dtype in dtypes:
        done = card["prepared"].get(dtype)
        if done and done.get("profile") == profile:
            continue
        logger.info(
            "compiling Symmetrix-XL kernels of %s (%s, %s profile) into %s (seconds with the speed profile)",
            bundle.source.name,
            dtype,
            profile,
            bundle.jit_dir,
        )
        t0 = time.perf_counter()
        try:
            calc = _make_calculator(bundle, dtype, profile)
        except Exception as exc:  # noqa: BLE001 - the compiler and loader raise many types
            raise CalculationFailed(
                f"Symmetrix-XL kernels of {bundle.source} did not compile ({dtype}): {exc}",
                "check that a C++20 compiler is on PATH (CXX)",
            ) from None
        seconds = round(time.perf_counter() - t0, 1)
        logger.info("Symmetrix-XL kernels (%s) %s in %.0f s", dtype, calc.jit_status, seconds)
        card["prepared"][dtype] = {"profile": profile, "compile_s": seconds, "jit_status": calc.jit_status}
        bundle.write_card(card)
    return bundle


def choose_route(
    model: str | Path, dtype: Dtype = "float64", route: Route = "auto", device: str = "cpu"
) -> RouteChoice:
    """Decide which engine evaluates ``model`` in ASE, and log it (no compiling, no conversion).

    ``auto`` takes Symmetrix-XL when it is installed, the device is the CPU and the model's
    bundle holds kernels of this precision for the model file as it is now; otherwise
    mace-torch, with the reason.
    """
    choice = _choose(model, dtype, route, device)
    logger.info("MACE evaluation route: %s (%s)", choice.route, choice.reason)
    return choice


def _choose(model: str | Path, dtype: Dtype, route: Route, device: str) -> RouteChoice:
    if route == "mace-torch":
        return RouteChoice("mace-torch", "mace-torch requested")
    if symmetrix_version() is None:
        why = f"{PIP_PACKAGE} is not installed"
    elif device not in ("cpu", "auto"):
        why = f"the {PIP_PACKAGE} route runs on the CPU, not {device}"
    else:
        bundle = Bundle.of(model)
        card = bundle.card()
        sha = file_hash(model, 64) if Path(model).is_file() else None
        if not card:
            why = f"no Symmetrix-XL kernels prepared for {bundle.source.name} (mlff2d export --symmetrix)"
        elif card.get("source_model_sha256") != sha:
            why = f"{bundle.folder} was prepared for another version of the model file"
        elif card.get("symmetrix_xl") != symmetrix_version() or card.get("spline_points") != SPLINE_POINTS:
            why = f"{bundle.folder} was prepared by another {PIP_PACKAGE} or mlff2d version"
        elif card.get("refused"):
            why = card["refused"]
        elif dtype not in card.get("prepared", {}):
            why = f"no {dtype} Symmetrix-XL kernels in {bundle.folder}"
        else:
            return RouteChoice("symmetrix", f"{PIP_PACKAGE} {symmetrix_version()} kernels in {bundle.folder}")
    if route == "symmetrix":
        return RouteChoice("symmetrix", f"requested ({why}: preparing now)")
    return RouteChoice("mace-torch", why)


def symmetrix_calculator(model: str | Path, dtype: Dtype = "float64") -> Any:
    """The Symmetrix-XL ASE calculator of ``model``, preparing its bundle if needed.

    Energies in eV, forces in eV/Å, stress in eV/Å³ (ASE conventions).
    """
    bundle = Bundle.of(model)
    profile = bundle.card().get("prepared", {}).get(dtype, {}).get("profile", "speed")
    prepare_bundle(model, (dtype,), profile)
    calc = _make_calculator(bundle, dtype, profile)
    if calc.jit_status not in ("cached", "not_applicable"):
        logger.warning("Symmetrix-XL recompiled the kernels of %s (compiler or CPU changed)", bundle.source)
    return calc


def ase_calculator(
    model: str | Path,
    dtype: Dtype = "float64",
    device: str = "cpu",
    route: Route = "auto",
    head: str | None = None,
) -> tuple[Any, RouteChoice]:
    """An ASE calculator of a MACE model on the fastest prepared route, and the route taken.

    Parameters
    ----------
    model
        mace-torch ``*.model`` file.
    dtype
        Precision of the evaluation (``float64`` for phonons and relaxations).
    device
        ``"cpu"``, ``"cuda"`` or ``"auto"`` (mace-torch only off the CPU).
    route
        ``auto`` (:func:`choose_route`), ``symmetrix`` (prepared now if needed) or
        ``mace-torch``.
    head
        Head of a multi-head model (mace-torch route).

    Returns
    -------
    calculator, RouteChoice
        The calculator and why it was chosen (also logged).
    """
    from mlff2d.training.calculator import calculator as mace_calculator

    if route not in ("auto", "symmetrix", "mace-torch"):
        raise InputError(f"unknown route {route!r}", "use auto, symmetrix or mace-torch")
    choice = choose_route(model, dtype, route, device)
    if choice.route == "symmetrix":
        return symmetrix_calculator(model, dtype), choice
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return mace_calculator(model, device=device, dtype=dtype, head=head), choice


def export_bundle(model: str | Path, dtype: Dtype = "float64") -> tuple[Path | None, str]:
    """Prepare the Symmetrix-XL route of ``model`` for ``mlff2d export``; never fails the export.

    Kernels are compiled for float64 (phonons, relaxations) and ``dtype``.

    Returns
    -------
    model_json, note
        The converted model (``None`` when skipped) and one line saying what happened.
    """
    if symmetrix_version() is None:
        note = f"skipped: {PIP_PACKAGE} is not installed (pip install {PIP_PACKAGE})"
        logger.info("Symmetrix-XL route %s", note)
        return None, note
    dtypes: tuple[Dtype, ...] = ("float64",) if dtype == "float64" else ("float64", dtype)
    try:
        bundle = prepare_bundle(model, dtypes)
    except ModelError as exc:
        logger.info("Symmetrix-XL route skipped: %s", exc.message)
        return None, f"skipped: {exc.message}"
    card = bundle.card()
    times = ", ".join(f"{d} {card['prepared'][d]['compile_s']:.0f} s" for d in dtypes)
    note = f"prepared in {bundle.folder} (convert {card.get('convert_s', 0):.0f} s; compile {times})"
    logger.info("Symmetrix-XL route %s", note)
    return bundle.model_json, note
