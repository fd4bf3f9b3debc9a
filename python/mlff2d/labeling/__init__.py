"""Labelling: resumable per-structure label store, labelling runs, dataset recipes."""

from __future__ import annotations

from mlff2d.labeling.label import attach_labels, label_structures
from mlff2d.labeling.store import LabelStore
from mlff2d.structures.io import structure_key

__all__ = ["LabelStore", "attach_labels", "label_structures", "structure_key"]
