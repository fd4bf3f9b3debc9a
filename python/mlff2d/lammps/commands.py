"""CLI: ``mlff2d md`` (options generated from :class:`mlff2d.lammps.workflow.MDSettings`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlff2d.lammps.workflow import MDSettings, MDWorkflow
from mlff2d.settings import cli_options, settings_from_cli


@click.command("md")
@cli_options(MDSettings)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--force", is_flag=True, help="Rerun even if a finished run is there.")
def md(output: Path, force: bool, **kwargs: Any) -> None:
    """LAMMPS MD of a (defective) 2D supercell: minimise, equilibrate at T, NVE production.

    Example: mlff2d md WSe2 --supercell 12 12 --defect V_Se --model m.model-lammps.pt -o runs/md
    """
    workflow = MDWorkflow(settings_from_cli(MDSettings, kwargs), output, force=force)
    res = workflow.run()
    if workflow.status == "reused":
        click.echo(f"{output}: finished run found, nothing to do (--force to rerun)")
    else:
        click.echo(f"wrote {output}: {res.describe()}")
