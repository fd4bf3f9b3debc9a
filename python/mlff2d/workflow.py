"""The workflow base: one class per stage, one rule for "is this finished?", typed results.

A stage is a :class:`Workflow` subclass with three class attributes (its ``command``, its
``Settings`` and ``Result`` dataclasses) and one method, ``_run(record)``. The base gives every
stage the same behaviour:

- one output folder; ``summary.yaml`` in it records the settings, the hashes of the input files,
  the package versions, the timings and the typed result;
- :meth:`Workflow.is_finished`: the folder holds a summary with the same settings and input hashes
  and every output file of its result exists; :meth:`Workflow.run` then returns the stored result
  instead of computing again (``force=True`` computes anyway);
- :meth:`Workflow.run` returns the stage's :class:`StageResult`: a dataclass whose ``Path`` fields
  are its output files and whose other fields are the numbers worth reading without opening them;
- :meth:`Workflow.command_line`: the exact ``mlff2d`` command that reproduces the stage.

Example
-------
>>> from mlff2d.phonons import PhononsSettings, PhononsWorkflow  # doctest: +SKIP
>>> res = PhononsWorkflow(PhononsSettings(calculator="sw"), "runs/ph").run()  # doctest: +SKIP
>>> res.pristine.band_structure  # a Path  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shlex
import tempfile
import time
import typing
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import yaml

from mlff2d.config import to_dict
from mlff2d.errors import InputError
from mlff2d.runinfo import RunRecord, atomic_write_text, file_hash, write_summary
from mlff2d.settings import Settings, from_mapping

logger = logging.getLogger(__name__)

SettingsT = TypeVar("SettingsT", bound=Settings)
ResultT = TypeVar("ResultT", bound="StageResult")

#: file name of a stage's record in its output folder.
SUMMARY = "summary.yaml"


@dataclasses.dataclass
class StageResult:
    """Base of the typed results of every stage.

    Subclasses add fields: ``Path`` fields (or nested results, ``dict[str, Path]``, ``list[Path]``)
    are output files; everything else is a small result (numbers, strings, tables as lists of dicts).

    Attributes
    ----------
    outdir
        The stage's output folder.
    """

    outdir: Path

    def output_files(self) -> dict[str, Path]:
        """Every output file of the result, by dotted field name (``"pristine.band_structure"``)."""
        out: dict[str, Path] = {}
        for name, value in self._items():
            if isinstance(value, Path):
                out[name] = value
            elif isinstance(value, StageResult):
                out.update({f"{name}.{k}": v for k, v in value.output_files().items()})
            elif isinstance(value, dict):
                out.update({f"{name}.{k}": v for k, v in value.items() if isinstance(v, Path)})
            elif isinstance(value, list):
                out.update({f"{name}.{i}": v for i, v in enumerate(value) if isinstance(v, Path)})
        return out

    def summary(self) -> dict[str, Any]:
        """The small results (every field that is not a path), as plain types."""
        out: dict[str, Any] = {}
        hints = typing.get_type_hints(type(self))
        for name, value in self._items():
            if isinstance(value, StageResult):
                out[name] = value.summary()
            elif not _holds_paths(hints[name]):
                out[name] = to_dict(value)
        return out

    def to_record(self, root: Path | None = None) -> dict[str, Any]:
        """The result as plain types, paths relative to ``root`` (default ``outdir``) where inside it."""
        root = Path(self.outdir) if root is None else root
        out: dict[str, Any] = {}
        for name, value in self._items():
            if isinstance(value, Path):
                out[name] = _rel(value, root)
            elif isinstance(value, StageResult):
                out[name] = {"outdir": _rel(Path(value.outdir), root), **value.to_record(root)}
            elif isinstance(value, dict) and any(isinstance(v, Path) for v in value.values()):
                out[name] = {
                    k: _rel(v, root) if isinstance(v, Path) else to_dict(v) for k, v in value.items()
                }
            elif isinstance(value, list) and any(isinstance(v, Path) for v in value):
                out[name] = [_rel(v, root) if isinstance(v, Path) else to_dict(v) for v in value]
            else:
                out[name] = to_dict(value)
        return out

    @classmethod
    def from_record(cls: type[ResultT], data: dict[str, Any], outdir: str | Path) -> ResultT:
        """Rebuild a result from :meth:`to_record` output found in ``outdir``."""
        res = from_mapping(cls, {**data, "outdir": str(outdir)}, where=f"{outdir}/{SUMMARY}: result")
        res._resolve(Path(outdir))
        return res

    def _items(self) -> list[tuple[str, Any]]:
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "outdir"]

    def _resolve(self, root: Path) -> None:
        """Make every relative path of a loaded result absolute under ``root`` (in place)."""
        for name, value in self._items():
            if isinstance(value, Path):
                setattr(self, name, _under(value, root))
            elif isinstance(value, StageResult):
                value.outdir = _under(Path(value.outdir), root)
                value._resolve(root)
            elif isinstance(value, dict):
                setattr(
                    self, name, {k: _under(v, root) if isinstance(v, Path) else v for k, v in value.items()}
                )
            elif isinstance(value, list):
                setattr(self, name, [_under(v, root) if isinstance(v, Path) else v for v in value])


def _holds_paths(tp: Any) -> bool:
    """True for ``Path``, ``Path | None`` and containers of paths."""
    if tp is Path:
        return True
    return any(_holds_paths(a) for a in typing.get_args(tp))


def _rel(p: Path, root: Path) -> str:
    try:
        return str(p.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(p)


def _under(p: Path, root: Path) -> Path:
    return p if p.is_absolute() else root / p


def path_hash(path: Path) -> str | None:
    """Identity of an input: a file's bytes, a stage folder's recorded fingerprint, else ``None``.

    A stage folder stands for what it was computed from (its settings and, recursively, its own
    inputs), so a stage recomputed from the same inputs (e.g. after an interruption) does not
    invalidate the stages that used it.
    """
    p = Path(path)
    if p.is_file():
        return file_hash(p)
    if (p / SUMMARY).is_file():
        data = yaml.safe_load((p / SUMMARY).read_text()) or {}
        key = {"command": data.get("command"), "fingerprint": data.get("fingerprint")}
        return hashlib.sha256(repr(key).encode()).hexdigest()[:16]
    return None


class Workflow(ABC, Generic[SettingsT, ResultT]):
    """Base of every stage: settings in, one output folder, a typed result out.

    Parameters
    ----------
    settings
        The stage's settings dataclass (every default lives there).
    outdir
        Output folder (created on :meth:`run`).
    force
        Compute again even if a finished result with the same settings and inputs is there.
    progress
        Show progress bars.
    """

    #: the ``mlff2d`` sub-command that runs this workflow (``"md"``, ``"phonons run"``).
    command: ClassVar[str]
    #: the settings and result dataclasses.
    Settings: ClassVar[type[Settings]]
    Result: ClassVar[type[StageResult]]
    #: bump when the meaning of the outputs changes, so that old folders are recomputed.
    version: ClassVar[int] = 1

    def __init__(
        self, settings: SettingsT, outdir: str | Path, *, force: bool = False, progress: bool = True
    ) -> None:
        if not isinstance(settings, self.Settings):
            raise TypeError(
                f"{type(self).__name__} needs {self.Settings.__name__}, got {type(settings).__name__}"
            )
        self.settings = settings
        self.outdir = Path(outdir)
        self.force = force
        self.progress = progress
        #: ``"ran"`` or ``"reused"`` after :meth:`run`.
        self.status: str | None = None
        #: wall time of the computation (s); that of the stored run when reused.
        self.wall_s: float = 0.0

    # -- what decides re-running -------------------------------------------------------------
    def inputs(self) -> dict[str, Path]:
        """Input files whose content decides whether a finished result is still valid.

        Default: every ``Path`` setting that names an existing file or stage folder. Override to
        add files that are not settings.
        """
        out = {}
        for f in dataclasses.fields(self.settings):
            v = getattr(self.settings, f.name)
            if isinstance(v, Path) and v.exists():
                out[f.name] = v
        return out

    def fingerprint(self) -> dict[str, Any]:
        """Settings, input hashes and workflow version: what a finished result is valid for."""
        return {
            "version": self.version,
            "settings": to_dict(self.settings),
            "inputs": {k: path_hash(p) for k, p in sorted(self.inputs().items())},
        }

    def _stored(self) -> dict[str, Any] | None:
        path = self.outdir / SUMMARY
        if not path.is_file():
            return None
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError:
            return None
        return data if isinstance(data, dict) else None

    def is_finished(self) -> bool:
        """True if ``outdir`` holds a result for the same settings and inputs, all outputs present."""
        data = self._stored()
        if not data or data.get("command") != self.command or "result" not in data:
            return False
        if data.get("fingerprint") != _plain(self.fingerprint()):
            return False
        try:
            res = self.Result.from_record(data["result"], self.outdir)
        except InputError:
            return False
        return all(p.exists() for p in res.output_files().values())

    # -- running -----------------------------------------------------------------------------
    def run(self) -> ResultT:
        """Compute (or reuse) the result, write ``summary.yaml`` and return the typed result."""
        if not self.force and self.is_finished():
            logger.info("%s: finished with the same settings and inputs, reused (force to redo)", self.outdir)
            self.status = "reused"
            self.wall_s = float((self._stored() or {}).get("timings_s", {}).get("total", 0.0))
            return self.load(self.outdir)  # type: ignore[return-value]
        self.check()
        self.outdir.mkdir(parents=True, exist_ok=True)
        _check_writable(self.outdir)
        record = RunRecord(
            self.command, config=self.settings, inputs={k: str(p) for k, p in self.inputs().items()}
        )
        t0 = time.perf_counter()
        with _rewriting(self.outdir):
            result = self._run(record)
        self.wall_s = round(time.perf_counter() - t0, 3)
        record.timings["total"] = self.wall_s
        record.outputs = {k: str(v) for k, v in result.output_files().items()}
        record.results = {**result.summary(), **record.results}
        write_summary(
            self.outdir,
            record,
            extra={
                "command_line": self.command_line(),
                "fingerprint": self.fingerprint(),
                "result": result.to_record(),
            },
        )
        self.status = "ran"
        return result

    def check(self) -> None:
        """Check inputs before computing (override; raise :class:`InputError` subclasses)."""

    @abstractmethod
    def _run(self, record: RunRecord) -> ResultT:
        """Compute the stage into ``self.outdir``; timings and extra results go into ``record``."""

    @classmethod
    def load(cls, outdir: str | Path) -> StageResult:
        """The typed result stored in a finished output folder of this stage.

        Raises
        ------
        InputError
            If ``outdir`` holds no finished result of this stage.
        """
        path = Path(outdir) / SUMMARY
        if not path.is_file():
            raise InputError(
                f"{outdir} holds no finished '{cls.command}' result ({SUMMARY} missing)",
                f"run `mlff2d {cls.command} ... -o {outdir}` first",
            )
        data = yaml.safe_load(path.read_text()) or {}
        if data.get("command") != cls.command or "result" not in data:
            raise InputError(
                f"{outdir} is not an output folder of `mlff2d {cls.command}`"
                f" (its summary is of '{data.get('command')}')",
                f"pass the output folder of `mlff2d {cls.command}`",
            )
        return cls.Result.from_record(data["result"], outdir)

    def command_line(self) -> str:
        """The shell command that reproduces this stage."""
        return shlex.join(["mlff2d", *self.command.split(), *self.settings.to_argv(), "-o", str(self.outdir)])


def _check_writable(folder: Path) -> None:
    """Fail before any work in a folder where no file can be created (the error names ``folder``)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        exc.filename = str(folder)
        raise


@contextmanager
def _rewriting(outdir: Path) -> Iterator[None]:
    """While a stage rewrites ``outdir``: no summary there; errors name the folder.

    A summary of earlier settings (or of the same ones, with ``force``) must not vouch for
    output files that an interrupted or failed run has half rewritten, so it is removed, and put
    back only when the stage refused an input (:class:`InputError`) before writing any file. An
    ``OSError`` that names no file (a full disk met by a buffered write) gets ``outdir`` as its
    file name, for the one-line error of the CLI.
    """
    summary = outdir / SUMMARY
    old = summary.read_text() if summary.is_file() else None
    summary.unlink(missing_ok=True)
    since = time.time_ns() - 20_000_000  # file times come from a clock that lags by a few ms
    try:
        yield
    except InputError:
        written = any(p.stat().st_mtime_ns >= since for p in outdir.rglob("*") if p.is_file())
        if old is not None and not written:
            atomic_write_text(summary, old)
        raise
    except OSError as exc:
        exc.filename = exc.filename or str(outdir)
        raise


def _plain(obj: Any) -> Any:
    """Round-trip through YAML, so that a fingerprint compares equal to the stored one."""
    return yaml.safe_load(yaml.safe_dump(obj))
