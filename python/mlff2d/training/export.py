"""Export a trained MACE model to TorchScript for LAMMPS (``pair_style mace``).

The model is wrapped in mace-torch's :class:`mace.calculators.LAMMPS_MACE` (the interface
that ``pair_style mace`` calls), converted to the requested dtype, compiled with
``e3nn.util.jit.compile`` (TorchScript) and saved as ``<stem>.model-lammps.pt``. A JSON
sidecar ``<stem>.model-lammps.json`` (also embedded in the TorchScript file as the extra file
``mlff2d.json``) says what the model is: elements in LAMMPS type order, atomic numbers,
r_max, interaction layers, dtype, head, training-data hash and test metrics. Unlike
mace-torch's ``create_lammps_model`` it never prompts: a multi-head model needs ``head``.
With ``symmetrix`` (the default) the model is also converted for Symmetrix-XL and its kernels
compiled once, next to the model (:func:`mlff2d.training.symmetrix.export_bundle`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ase import Atoms

from mlff2d.runinfo import RunRecord, atomic_write_text, file_hash
from mlff2d.structures import species_order
from mlff2d.training.data import import_mace, load_model, model_elements, model_heads, resolve_head
from mlff2d.training.workflows import ExportResult, ExportSettings, TrainResult

logger = logging.getLogger(__name__)

LAMMPS_SUFFIX = ".model-lammps.pt"


@dataclass
class ModelCard:
    """What an exported model is (the JSON sidecar).

    Attributes
    ----------
    elements
        Element symbols in LAMMPS type order (metal, chalcogen, others): the order to write
        after the model file in ``pair_coeff * * model.model-lammps.pt W Se``.
    atomic_numbers
        Atomic numbers the model knows, in the model's (ascending) order.
    r_max
        Cut-off radius (Å).
    num_interactions
        Message-passing layers; the receptive field is ``num_interactions * r_max`` Å.
    dtype
        ``"float64"`` or ``"float32"``.
    head
        The exported head.
    source_model, source_model_sha256
        The mace-torch model file that was exported and its hash.
    dataset_hash, e0s, test_metrics
        From the result of the training run whose folder holds the model (else ``None``).
    mace_version
        mace-torch version used for the export.
    """

    elements: list[str]
    atomic_numbers: list[int]
    r_max: float
    num_interactions: int
    dtype: str
    head: str
    source_model: str
    source_model_sha256: str
    dataset_hash: str | None = None
    e0s: dict[str, Any] | None = None
    test_metrics: dict[str, Any] | None = None
    mace_version: str | None = None
    pair_coeff: str = ""


def lammps_elements(symbols: list[str], training_data: str | Path | None = None) -> list[str]:
    """Elements in LAMMPS type order (:func:`mlff2d.structures.species_order` semantics).

    The host metal and chalcogen are the most common ones in ``training_data`` when given;
    otherwise all elements count once (ties go to W before Mo and Se before S/Te).
    """
    if training_data is not None and Path(training_data).is_file():
        from ase.io import read

        frames = read(training_data, index=":", format="extxyz")
        order = species_order(frames)
        return order + sorted(set(symbols) - set(order))
    return species_order(Atoms(symbols))


def export(
    settings: ExportSettings, outdir: str | Path, record: RunRecord, training: TrainResult | None = None
) -> ExportResult:
    """Export ``settings.model`` (mace-torch ``*.model``) to ``outdir/<stem>.model-lammps.pt`` + JSON.

    Parameters
    ----------
    settings
        The model, dtype and head.
    outdir
        Output folder.
    record
        Receives the compile time (s).
    training
        The result of the training run that wrote the model: its dataset hash, E0s and test
        errors go into the card (``None``: left empty).

    Raises
    ------
    ModelError
        If the file is not a MACE model, or it has several heads and ``head`` is not given.
    """
    import_mace()
    src, out = settings.model, Path(outdir)
    mdl = load_model(src, "cpu")
    head = resolve_head(mdl, settings.head, str(src))
    mdl = mdl.double() if settings.dtype == "float64" else mdl.float()
    card = model_card(mdl, src, settings.dtype, head, training.metrics if training else {})
    stem = src.name[: -len(".model")] if src.name.endswith(".model") else src.stem
    lmp_path = out / f"{stem}{LAMMPS_SUFFIX}"
    card.pair_coeff = f"pair_coeff * * {lmp_path.name} {' '.join(card.elements)}"
    with record.timer("compile"):
        sidecar = _save(mdl, head, card, lmp_path)
    logger.info("wrote %s (%s); use: %s", lmp_path, settings.dtype, card.pair_coeff)
    symmetrix_model, symmetrix_note = None, "not requested"
    if settings.symmetrix:
        from mlff2d.training.symmetrix import export_bundle

        with record.timer("symmetrix"):
            symmetrix_model, symmetrix_note = export_bundle(src, settings.dtype)
    return ExportResult(
        outdir=out,
        lammps_model=lmp_path,
        sidecar=sidecar,
        pair_coeff=card.pair_coeff,
        elements=card.elements,
        dtype=card.dtype,
        head=card.head,
        r_max=card.r_max,
        num_interactions=card.num_interactions,
        symmetrix_model=symmetrix_model,
        symmetrix=symmetrix_note,
    )


def model_card(model: Any, src: Path, dtype: str, head: str, metrics: dict[str, Any]) -> ModelCard:
    """The card of ``model`` (read from ``src``), with the training ``metrics`` if known."""
    train_file = ((metrics.get("dataset") or {}).get("train") or {}).get("path")
    return ModelCard(
        elements=lammps_elements(model_elements(model), train_file),
        atomic_numbers=[int(z) for z in model.atomic_numbers],
        r_max=float(model.r_max),
        num_interactions=int(model.num_interactions),
        dtype=dtype,
        head=head,
        source_model=str(src),
        source_model_sha256=file_hash(src, 64),
        dataset_hash=metrics.get("dataset_hash"),
        e0s=metrics.get("e0s"),
        test_metrics=(metrics.get("test") or {}).get("overall"),
        mace_version=metadata.version("mace-torch"),
    )


def _save(model: Any, head: str, card: ModelCard, lmp_path: Path) -> Path:
    """Compile ``model`` for LAMMPS, save it with the card embedded and the JSON sidecar."""
    import torch
    from e3nn.util import jit
    from mace.calculators import LAMMPS_MACE

    kwargs = {"head": head} if len(model_heads(model)) > 1 else {}
    scripted = jit.compile(LAMMPS_MACE(model, **kwargs))
    lmp_path.parent.mkdir(parents=True, exist_ok=True)
    card_json = json.dumps(asdict(card), indent=2)
    tmp = lmp_path.with_name(f".{lmp_path.name}.tmp")
    torch.jit.save(scripted, str(tmp), _extra_files={"mlff2d.json": card_json})
    tmp.replace(lmp_path)
    sidecar = lmp_path.with_suffix(".json")
    atomic_write_text(sidecar, card_json + "\n")
    return sidecar


def read_model_card(lammps_model: str | Path) -> dict[str, Any]:
    """Read the ``mlff2d.json`` card embedded in an exported TorchScript model."""
    import torch

    extra = {"mlff2d.json": ""}
    torch.jit.load(str(lammps_model), map_location="cpu", _extra_files=extra)
    return json.loads(extra["mlff2d.json"]) if extra["mlff2d.json"] else {}
