"""Training (mace-torch), evaluation and LAMMPS export of MACE models.

One workflow per stage (:mod:`.workflows`): :class:`TrainWorkflow` (``mlff2d train``) passes
mace-torch's own YAML config to its parser and runs it in process (:mod:`.train`);
:class:`EvaluateWorkflow` (``mlff2d evaluate``) computes batched error metrics and parity plots
(:mod:`.evaluate`); :class:`ExportWorkflow` (``mlff2d export``) writes the TorchScript model for
``pair_style mace`` with a JSON sidecar (:mod:`.export`); :func:`calculator` gives an ASE
calculator. Heavy libraries (torch, mace-torch) are imported inside the functions.
"""

from __future__ import annotations

import importlib
from typing import Any

# bound here, not lazily: the function hides the sub-module of the same name
from mlff2d.training.calculator import calculator as calculator

#: public name -> module that defines it (imported on first use, so that the commands, which
#: import :mod:`.workflows` for their options, stay quick to load).
_WHERE = {
    "ModelCard": "export",
    "read_model_card": "export",
    **dict.fromkeys(
        (
            "EvaluateResult",
            "EvaluateSettings",
            "EvaluateWorkflow",
            "ExportResult",
            "ExportSettings",
            "ExportWorkflow",
            "TrainResult",
            "TrainSettings",
            "TrainWorkflow",
        ),
        "workflows",
    ),
}

__all__ = ["calculator", *sorted(_WHERE)]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'mlff2d.training' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"mlff2d.training.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
