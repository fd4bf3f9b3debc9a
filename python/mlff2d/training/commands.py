"""CLI: ``mlff2d train``, ``mlff2d evaluate``, ``mlff2d export`` (options from the settings dataclasses)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlff2d.settings import cli_options, settings_from_cli
from mlff2d.training.workflows import (
    EvaluateSettings,
    EvaluateWorkflow,
    ExportSettings,
    ExportWorkflow,
    TrainSettings,
    TrainWorkflow,
)

_PATH = click.Path(path_type=Path)


@click.command("train")
@cli_options(TrainSettings)
@click.option("-o", "--output", type=_PATH, required=True, help="Run folder (mace-torch work_dir).")
@click.option("--force", is_flag=True, help="Discard checkpoints and train from scratch.")
def train(output: Path, force: bool, **kwargs: Any) -> None:
    """Train a MACE model; CONFIG is a mace-torch training YAML (training/*.yaml).

    Keys of CONFIG go unchanged to mace-torch's parser (`mace_run_train --help`); mlff2d-only
    keys sit under `mlff2d:`. Interrupt and run the same command again to resume from the
    last checkpoint. Example: mlff2d train training/wse2_sw_quick.yaml --data runs/data -o runs/model
    """
    workflow = TrainWorkflow(settings_from_cli(TrainSettings, kwargs), output, force=force)
    res = workflow.run()
    msg = f"model: {res.model}" + (" (finished before, reused)" if workflow.status == "reused" else "")
    if res.test is not None:
        from mlff2d.training.evaluate import one_line

        msg += f"; test: {one_line(res.test)}"
    click.echo(msg)


@click.command("evaluate")
@cli_options(EvaluateSettings)
@click.option("-o", "--output", type=_PATH, required=True, help="Output folder.")
@click.option("--force", is_flag=True, help="Evaluate again even if the folder holds this result.")
def evaluate(output: Path, force: bool, **kwargs: Any) -> None:
    """Errors of MODEL (mace-torch .model) on DATA (extxyz with REF_energy/REF_forces).

    Writes metrics.json, metrics.md, parity_energy.png, parity_forces.png, predictions.extxyz.
    """
    from mlff2d.training.evaluate import markdown_table

    res = EvaluateWorkflow(settings_from_cli(EvaluateSettings, kwargs), output, force=force).run()
    click.echo(markdown_table(res.metrics))


@click.command("export")
@cli_options(ExportSettings)
@click.option("-o", "--output", type=_PATH, required=True, help="Output folder.")
@click.option("--force", is_flag=True, help="Export again even if the folder holds this result.")
def export(output: Path, force: bool, **kwargs: Any) -> None:
    """Export MODEL to TorchScript for LAMMPS (<name>.model-lammps.pt + JSON sidecar)."""
    res = ExportWorkflow(settings_from_cli(ExportSettings, kwargs), output, force=force).run()
    click.echo(f"wrote {res.lammps_model} and {res.sidecar.name}; LAMMPS: {res.pair_coeff}")
