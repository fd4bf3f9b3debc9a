"""The report stage: ``report.html`` (self-contained) and ``report.md`` of a pipeline run."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlff2d.runinfo import RunRecord
from mlff2d.settings import Settings, setting
from mlff2d.workflow import StageResult, Workflow


@dataclass
class ReportSettings(Settings):
    """What the report covers.

    Attributes
    ----------
    recipe
        The analysis recipe of the run.
    stages
        The stages shown, in order.
    """

    recipe: Path = setting(help="Analysis recipe (YAML).", argument=True)
    stages: list[str] = setting([], "Stages shown, in order.", cli_hidden=True)


@dataclass
class ReportResult(StageResult):
    """The report files.

    Attributes
    ----------
    html
        One self-contained page (figures embedded).
    markdown
        The same as Markdown, figures linked.
    sections
        Section titles, in order.
    """

    html: Path
    markdown: Path
    sections: list[str]


class ReportWorkflow(Workflow[ReportSettings, ReportResult]):
    """Assemble the report from the typed results of the stages of a pipeline run.

    Parameters
    ----------
    settings, outdir
        See :class:`mlff2d.workflow.Workflow`.
    stages
        The :class:`mlff2d.pipeline.StageRun` objects (workflow and result), in order.
    recipe
        The loaded :class:`mlff2d.pipeline.Recipe`.
    """

    command = "run"
    Settings = ReportSettings
    Result = ReportResult

    def __init__(
        self, settings: ReportSettings, outdir: str | Path, *, stages: list[Any], recipe: Any
    ) -> None:
        super().__init__(settings, outdir)
        self.stages = [s for s in stages if s.result is not None]
        self.recipe = recipe

    def inputs(self) -> dict[str, Path]:
        """The recipe and every stage folder shown."""
        return {"recipe": self.settings.recipe, **{s.name: s.workflow.outdir for s in self.stages}}

    def _run(self, record: RunRecord) -> ReportResult:
        from mlff2d.report.pipeline_report import build_report

        rep = build_report(self.recipe, self.stages)
        paths = rep.write(self.outdir)
        return ReportResult(self.outdir, paths["html"], paths["markdown"], [s.title for s in rep.sections])

    def command_line(self) -> str:
        """``mlff2d run RECIPE -o RUN --report-only``."""
        run = str(self.outdir.parent)
        return shlex.join(["mlff2d", "run", str(self.settings.recipe), "-o", run, "--report-only"])
