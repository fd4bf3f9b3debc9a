"""The end-to-end pipeline: ``mlff2d run analysis/<recipe>.yaml -o runs/<name>``.

The pipeline composes the stage commands (the same ones a user runs by hand), each writing
into its own sub-folder of the run folder. A stage is skipped when its record
(``.pipeline/<stage>.json``: the exact command, the hashes of its input files, its outputs)
matches what it would run now, so running again right after is a no-op. A stage that was
interrupted has no record and is run again; every command resumes its own work (label store,
training checkpoints, phonon displacement cache, MD restart files).
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from mlff2d.config import from_dict, load_yaml, to_dict
from mlff2d.errors import CalculationFailed, ConfigError
from mlff2d.runinfo import RunRecord, atomic_write_text, file_hash, write_summary

logger = logging.getLogger(__name__)


@dataclass
class Step:
    """One pipeline step: a stage command and what it reads and writes.

    Attributes
    ----------
    name
        Step name, also its sub-folder of the run folder.
    argv
        Arguments of ``mlff2d`` (e.g. ``["train", "cfg.yaml", "-o", "run/model"]``).
    inputs
        Files whose content decides whether the step must run again.
    outputs
        Files that must exist for the step to count as done.
    """

    name: str
    argv: list[str]
    inputs: list[Path] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)

    def fingerprint(self) -> dict[str, Any]:
        """The command and the hashes of its inputs."""
        return {
            "argv": [str(a) for a in self.argv],
            "inputs": {str(p): (file_hash(p) if p.is_file() else None) for p in self.inputs},
        }


class StepRunner:
    """Runs steps in order, skipping those whose record matches, timing all of them."""

    def __init__(self, rundir: Path, force: bool = False) -> None:
        self.rundir = rundir
        self.force = force
        self.records = rundir / ".pipeline"
        self.timings: dict[str, float] = {}
        self.status: dict[str, str] = {}

    def _record(self, step: Step) -> Path:
        return self.records / f"{step.name}.json"

    def up_to_date(self, step: Step) -> bool:
        """True if the step's record matches its fingerprint and its outputs exist."""
        rec = self._record(step)
        if self.force or not rec.is_file():
            return False
        try:
            old = json.loads(rec.read_text())
        except json.JSONDecodeError:
            return False
        same = {k: old.get(k) for k in ("argv", "inputs")} == step.fingerprint()
        return same and all(p.exists() for p in step.outputs)

    def run(self, step: Step) -> None:
        """Run ``step`` unless it is up to date.

        Raises
        ------
        CalculationFailed
            If the stage command exits non-zero.
        """
        from mlff2d.cli import main

        if self.up_to_date(step):
            self.status[step.name] = "up to date"
            old = json.loads(self._record(step).read_text())
            self.timings[step.name] = old.get("wall_s", 0.0)
            click.echo(f"[{step.name}] up to date, skipped")
            return
        click.secho(f"[{step.name}] mlff2d {shlex.join(map(str, step.argv))}", bold=True)
        t0 = time.perf_counter()
        code = main([str(a) for a in step.argv])
        wall = round(time.perf_counter() - t0, 2)
        if code != 0:
            raise CalculationFailed(
                f"stage '{step.name}' failed (exit {code})",
                "fix the cause printed above and run the same command again: finished stages are kept",
            )
        missing = [str(p) for p in step.outputs if not p.exists()]
        if missing:
            raise CalculationFailed(f"stage '{step.name}' did not write {missing}")
        self.timings[step.name] = wall
        self.status[step.name] = "ran"
        atomic_write_text(self._record(step), json.dumps({**step.fingerprint(), "wall_s": wall}, indent=1))


StageBuilder = Callable[["Recipe", Path], list[Step]]
