"""A label store: one file per calculation, keyed by structure + settings, written atomically.

Layout of a store folder::

    <store>/<key>.extxyz        a finished label (REF_energy, REF_forces, REF_stress, ...)
    <store>/<key>.failed.json   a failed calculation with its reason (excluded from datasets)
    <store>/work/<key>/         run folder of a calculation (DFT text output), if the code needs one

Parallel workers (``--shard i/N``, a Slurm array) write disjoint keys, so no lock is needed;
a killed worker loses only the calculation it was running.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ase import Atoms
from ase.io import read, write

from mlff2d.runinfo import atomic_path, atomic_write_text


@dataclass
class LabelStore:
    """A folder of per-structure label files.

    Parameters
    ----------
    root
        The store folder (created on first write).
    """

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    def path(self, key: str) -> Path:
        """File of a finished label."""
        return self.root / f"{key}.extxyz"

    def failed_path(self, key: str) -> Path:
        """File recording a failed calculation."""
        return self.root / f"{key}.failed.json"

    def workdir(self, key: str) -> Path:
        """Run folder of one calculation (not created here)."""
        return self.root / "work" / key

    def status(self, key: str) -> str:
        """``"done"``, ``"failed"`` or ``"todo"``."""
        if self.path(key).is_file():
            return "done"
        if self.failed_path(key).is_file():
            return "failed"
        return "todo"

    def write(self, key: str, atoms: Atoms) -> Path:
        """Write a labelled structure atomically (temporary file + rename)."""
        p = self.path(key)
        with atomic_path(p) as tmp:
            write(tmp, atoms, format="extxyz")
        self.failed_path(key).unlink(missing_ok=True)
        return p

    def write_failure(self, key: str, reason: str, meta: dict[str, Any] | None = None) -> Path:
        """Record a failed calculation with its reason."""
        p = self.failed_path(key)
        atomic_write_text(p, json.dumps({"key": key, "reason": reason, **(meta or {})}, indent=1))
        return p

    def read(self, key: str) -> Atoms:
        """Read a finished label."""
        return read(self.path(key), format="extxyz")

    def failures(self) -> list[dict[str, Any]]:
        """All recorded failures."""
        return [json.loads(p.read_text()) for p in sorted(self.root.glob("*.failed.json"))]

    def keys(self) -> list[str]:
        """Keys of all finished labels (sorted)."""
        return sorted(
            p.name[: -len(".extxyz")] for p in self.root.glob("*.extxyz") if not p.name.startswith(".")
        )
