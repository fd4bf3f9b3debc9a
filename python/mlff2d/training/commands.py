"""CLI: ``mlff2d train``, ``mlff2d evaluate``, ``mlff2d export`` (options from the settings dataclasses)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlff2d.settings import cli_options, settings_from_cli
from mlff2d.training.committee import CommitteeExportResult, CommitteeResult, export_workflow, train_workflow
from mlff2d.training.workflows import (
    EvaluateSettings,
    EvaluateWorkflow,
    ExportSettings,
    TrainSettings,
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

    With --committee K (≥ 2), K models are trained into OUTPUT/member_<i>/ (seed + i, bootstrap
    resample of the training split), each resumed and reused on its own; the committee mean is
    evaluated and its force spread σ_F calibrated on the test split.
    """
    from mlff2d.training.evaluate import one_line
    from mlff2d.training.uncertainty import describe

    workflow = train_workflow(settings_from_cli(TrainSettings, kwargs), output, force=force)
    res = workflow.run()
    reused = " (finished before, reused)" if workflow.status == "reused" else ""
    if isinstance(res, CommitteeResult):
        msg = f"committee of {len(res.models)} models in {output}/member_*/{reused}"
        msg += f"; test (mean): {one_line(res.test)}" if res.test is not None else ""
        msg += f"; {describe(res.uncertainty)}" if res.uncertainty else ""
    else:
        msg = f"model: {res.model}{reused}"
        msg += f"; test: {one_line(res.test)}" if res.test is not None else ""
    click.echo(msg)


@click.command("evaluate")
@cli_options(EvaluateSettings)
@click.option("-o", "--output", type=_PATH, required=True, help="Output folder.")
@click.option("--force", is_flag=True, help="Evaluate again even if the folder holds this result.")
def evaluate(output: Path, force: bool, **kwargs: Any) -> None:
    """Errors of MODEL (mace-torch .model) on DATA (extxyz with REF_energy/REF_forces).

    Writes metrics.json, metrics.md, parity_energy.png, parity_forces.png, predictions.extxyz.
    MODEL may be a committee folder (`mlff2d train --committee K`): the committee mean is
    evaluated, and σ_F calibrated against the true force errors (calibration.png, Spearman
    correlation and σ_F threshold in metrics.json "uncertainty").
    """
    from mlff2d.training.evaluate import markdown_table
    from mlff2d.training.uncertainty import describe

    res = EvaluateWorkflow(settings_from_cli(EvaluateSettings, kwargs), output, force=force).run()
    click.echo(markdown_table(res.metrics))
    if res.uncertainty:
        click.echo(f"{describe(res.uncertainty)} ({res.calibration})")


@click.command("export")
@cli_options(ExportSettings)
@click.option("-o", "--output", type=_PATH, required=True, help="Output folder.")
@click.option("--force", is_flag=True, help="Export again even if the folder holds this result.")
def export(output: Path, force: bool, **kwargs: Any) -> None:
    """Export MODEL to TorchScript for LAMMPS (<name>.model-lammps.pt + JSON sidecar).

    MODEL may be a committee folder (`mlff2d train --committee K`): every member is exported
    into OUTPUT/member_<i>/, with a card OUTPUT/committee-lammps.json listing them.
    """
    res = export_workflow(settings_from_cli(ExportSettings, kwargs), output, force=force).run()
    if isinstance(res, CommitteeExportResult):
        click.echo(
            f"wrote {len(res.lammps_models)} members into {output}/member_*/ and {res.card.name};"
            f" LAMMPS (in {output}): {res.pair_coeff}"
        )
    else:
        click.echo(f"wrote {res.lammps_model} and {res.sidecar.name}; LAMMPS: {res.pair_coeff}")
