"""Labelling: resumable per-structure label store, labelling runs, dataset recipes."""

from __future__ import annotations

from mlff2d.labeling.store import LabelStore, structure_key
from mlff2d.labeling.label import attach_labels, label_structures

__all__ = ["LabelStore", "attach_labels", "label_structures", "structure_key"]
