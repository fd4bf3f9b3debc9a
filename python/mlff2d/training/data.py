"""Dataset and model files for training and evaluation: checks and loading.

Everything a user can get wrong about a dataset (missing or empty file, no ``REF_forces``,
elements the model does not know) or a model file (missing, not a MACE model, unknown
head) is caught here and raised as a one-line :class:`~mlff2d.errors.InputError` or
:class:`~mlff2d.errors.ModelError` naming the file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols

from mlff2d.errors import InputError, ModelError

if TYPE_CHECKING:  # pragma: no cover
    import torch

logger = logging.getLogger(__name__)

#: Dataset file names written by ``mlff2d dataset`` into its output folder.
SPLITS = ("train", "valid", "test")


@dataclass
class DatasetFiles:
    """The files of a dataset split into train / valid / test (extxyz).

    ``valid`` and ``test`` are optional: without ``valid`` mace-torch holds out
    ``valid_fraction`` of the training set; without ``test`` no test metrics are computed.
    """

    train: Path
    valid: Path | None = None
    test: Path | None = None

    def as_dict(self) -> dict[str, str]:
        """Split name → path, for the splits that exist."""
        return {
            k: str(v) for k, v in (("train", self.train), ("valid", self.valid), ("test", self.test)) if v
        }

    @classmethod
    def from_folder(cls, folder: str | Path) -> DatasetFiles:
        """Find the ``train/valid/test.extxyz`` written by ``mlff2d dataset -o FOLDER``."""
        d = Path(folder)
        if not d.is_dir():
            raise InputError(f"dataset folder not found: {d}", "run `mlff2d dataset RECIPE -o FOLDER` first")
        files = {s: d / f"{s}.extxyz" for s in SPLITS}
        if not files["train"].is_file():
            raise InputError(
                f"no train.extxyz in dataset folder {d}", "give the output folder of `mlff2d dataset`"
            )
        return cls(**{s: (p if p.is_file() else None) for s, p in files.items()})


@dataclass
class DatasetInfo:
    """What a dataset file holds (for checks, E0s choice and the summary)."""

    path: Path
    n_configs: int
    n_atoms: int
    elements: list[str]
    sources: list[str]
    config_types: dict[str, int] = field(default_factory=dict)
    has_stress: bool = False
    n_isolated_atoms: int = 0


def read_dataset(
    path: str | Path,
    energy_key: str = "REF_energy",
    forces_key: str = "REF_forces",
    require_energy: bool = True,
) -> list[Atoms]:
    """Read an extxyz dataset and check that every frame has reference energy and forces.

    Parameters
    ----------
    path
        extxyz file with ``info[energy_key]`` (eV) and ``arrays[forces_key]`` (eV/Å, shape (N, 3)).

    Raises
    ------
    InputError
        If the file is missing, empty, unreadable, or a frame lacks energy or forces.
    """
    from ase.io import read

    p = Path(path)
    if not p.is_file():
        raise InputError(f"dataset file not found: {p}", "check the path or run `mlff2d dataset` first")
    if p.stat().st_size == 0:
        raise InputError(f"dataset file is empty: {p}", "regenerate it with `mlff2d dataset`")
    try:
        frames = read(p, index=":", format="extxyz")
    except Exception as exc:  # ASE raises many types on malformed files
        raise InputError(f"cannot read dataset {p} as extxyz: {exc}".splitlines()[0]) from None
    if not frames:
        raise InputError(f"dataset file has no structures: {p}")
    for i, atoms in enumerate(frames):
        if forces_key not in atoms.arrays:
            raise InputError(
                f"dataset {p}: structure {i} has no '{forces_key}' array",
                "label the structures first (`mlff2d label`), forces in eV/Å",
            )
        if require_energy and energy_key not in atoms.info:
            raise InputError(f"dataset {p}: structure {i} has no '{energy_key}' in its info line")
    return frames


def describe(path: Path, frames: list[Atoms], stress_key: str = "REF_stress") -> DatasetInfo:
    """Summarise a list of labelled structures."""
    elements: set[str] = set()
    sources: set[str] = set()
    ctypes: dict[str, int] = {}
    for a in frames:
        elements.update(a.get_chemical_symbols())
        sources.add(str(a.info.get("source", "unknown")))
        ct = str(a.info.get("config_type", "default"))
        ctypes[ct] = ctypes.get(ct, 0) + 1
    return DatasetInfo(
        path=path,
        n_configs=len(frames),
        n_atoms=sum(len(a) for a in frames),
        elements=sorted(elements, key=lambda s: atomic_numbers[s]),
        sources=sorted(sources),
        config_types=ctypes,
        has_stress=all(stress_key in a.info for a in frames),
        n_isolated_atoms=ctypes.get("IsolatedAtom", 0),
    )


def import_mace() -> None:
    """Import mace-torch once, quietly.

    mace-torch prints a notice about cuequivariance, and e3nn warns about the ``torch.load``
    default that mace-torch sets; both are noise for our users.
    """
    import contextlib
    import io
    import sys
    import warnings

    if "mace.modules" in sys.modules:
        return
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.filterwarnings("ignore", message=".*TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD.*")
        import mace.modules  # noqa: F401


def load_model(path: str | Path, device: str = "cpu") -> torch.nn.Module:
    """Load a mace-torch model file (``*.model``), checking that it is one.

    Raises
    ------
    ModelError
        If the file is missing or is not a (pickled) MACE model.
    """
    import torch

    import_mace()

    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model file not found: {p}", "give the .model written by `mlff2d train`")
    try:
        model = torch.load(p, map_location=device, weights_only=False)
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(
            f"{p} is not a MACE model file ({msg[:120]})",
            "give the .model written by `mlff2d train` (not the LAMMPS export)",
        ) from None
    if not isinstance(model, torch.nn.Module) or not all(
        hasattr(model, k) for k in ("atomic_numbers", "r_max", "num_interactions")
    ):
        raise ModelError(
            f"{p} is not a MACE model file (found {type(model).__name__})",
            "give the .model written by `mlff2d train`",
        )
    return model


def model_elements(model: Any) -> list[str]:
    """Chemical symbols the model knows, in order of atomic number."""
    return [chemical_symbols[int(z)] for z in model.atomic_numbers.tolist()]


def model_heads(model: Any) -> list[str]:
    """Return the heads of a (multi-head) MACE model; ``["Default"]`` for single-head models."""
    heads = getattr(model, "heads", None)
    return list(heads) if heads else ["Default"]


def resolve_head(model: Any, head: str | None, where: str) -> str:
    """Return the head to use: ``head`` if given (checked), else the only one.

    Raises
    ------
    ModelError
        If the model has several heads and none is given, or ``head`` is not one of them.
    """
    heads = model_heads(model)
    if head is None:
        if len(heads) > 1:
            raise ModelError(f"{where} has several heads {heads}", "choose one with --head NAME")
        return heads[0]
    if head not in heads:
        raise ModelError(f"{where} has no head '{head}'", f"available heads: {', '.join(heads)}")
    return head


def check_elements(frames: list[Atoms], model: Any, data_path: str | Path, model_path: str | Path) -> None:
    """Raise :class:`ModelError` if the data contain elements the model was not trained on."""
    from mlff2d.validate import check_elements as check

    present = {s for a in frames for s in a.get_chemical_symbols()}
    check(present, model_elements(model), f"model {model_path}", str(data_path))
