"""Training (mace-torch), evaluation and LAMMPS export of MACE models.

``mlff2d train`` passes mace-torch's own YAML config to its parser and runs it in process
(:mod:`.train`); ``mlff2d evaluate`` computes batched error metrics and parity plots
(:mod:`.evaluate`); ``mlff2d export`` writes the TorchScript model for ``pair_style mace``
with a JSON sidecar (:mod:`.export`); :func:`calculator` gives an ASE calculator.
Heavy libraries (torch, mace-torch) are imported inside the functions.
"""

from __future__ import annotations

from mlff2d.training.calculator import calculator
from mlff2d.training.evaluate import EvalResult, evaluate_model
from mlff2d.training.export import ExportResult, ModelCard, export_model, read_model_card
from mlff2d.training.train import Trainer, TrainResult

__all__ = [
    "EvalResult",
    "ExportResult",
    "ModelCard",
    "TrainResult",
    "Trainer",
    "calculator",
    "evaluate_model",
    "export_model",
    "read_model_card",
]
