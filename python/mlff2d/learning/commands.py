"""CLI: ``mlff2d learn RECIPE -o FOLDER`` (options from :class:`~mlff2d.learning.workflow.LearnSettings`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlff2d.learning.workflow import LearnSettings, LearnWorkflow, summary_line
from mlff2d.settings import cli_options, settings_from_cli


@click.command("learn")
@cli_options(LearnSettings)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--force", is_flag=True, help="Rerun even if finished (finished steps are still reused).")
def learn(output: Path, force: bool, **kwargs: Any) -> None:
    """Active learning: committee, MD of candidate cells, label the frames of high σ_F, retrain.

    RECIPE is a learning recipe (training/learn/*.yaml). Every iteration lives in
    OUTPUT/iter_<iii>/ and every finished step is reused: run the same command again to resume.
    Example: mlff2d learn training/learn/wse2_sw_learn.yaml -o runs/learn
    """
    workflow = LearnWorkflow(settings_from_cli(LearnSettings, kwargs), output, force=force)
    res = workflow.run()
    reused = " (finished before, reused)" if workflow.status == "reused" else ""
    click.echo(summary_line(res) + reused)
