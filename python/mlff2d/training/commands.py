"""CLI: ``mlff2d train``, ``mlff2d evaluate``, ``mlff2d export``."""

from __future__ import annotations

import logging
from pathlib import Path

import click

logger = logging.getLogger(__name__)

_PATH = click.Path(path_type=Path)


@click.command("train")
@click.argument("config", type=_PATH)
@click.option("-o", "--output", type=_PATH, required=True, help="Run folder (mace-torch work_dir).")
@click.option(
    "--data", type=_PATH, default=None, help="Dataset folder from `mlff2d dataset` (train/valid/test.extxyz)."
)
@click.option("--train-file", type=_PATH, default=None, help="Training extxyz (overrides --data).")
@click.option("--valid-file", type=_PATH, default=None, help="Validation extxyz.")
@click.option("--test-file", type=_PATH, default=None, help="Test extxyz (evaluated after training).")
@click.option(
    "--device", type=click.Choice(["cpu", "cuda"]), default=None, help="Overrides the config's device."
)
@click.option("--force", is_flag=True, help="Discard checkpoints and train from scratch.")
def train(
    config: Path,
    output: Path,
    data: Path | None,
    train_file: Path | None,
    valid_file: Path | None,
    test_file: Path | None,
    device: str | None,
    force: bool,
) -> None:
    """Train a MACE model; CONFIG is a mace-torch training YAML (training/*.yaml).

    Keys of CONFIG go unchanged to mace-torch's parser (`mace_run_train --help`); mlff2d-only
    keys sit under `mlff2d:`. Interrupt and run the same command again to resume from the
    last checkpoint. Example: mlff2d train training/wse2_sw_quick.yaml --data runs/data -o runs/model
    """
    from mlff2d.training.train import Trainer

    res = Trainer(
        config,
        output,
        data=data,
        train_file=train_file,
        valid_file=valid_file,
        test_file=test_file,
        device=device,
        force=force,
    ).run()
    msg = f"model: {res.model}"
    if "test" in res.metrics:
        from mlff2d.training.evaluate import one_line

        msg += f"; test: {one_line(res.metrics['test']['overall'])}"
    click.echo(msg)


@click.command("evaluate")
@click.argument("model", type=_PATH)
@click.argument("data", type=_PATH)
@click.option("-o", "--output", type=_PATH, required=True, help="Output folder.")
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=16, show_default=True, help="Structures per batch."
)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--head", default=None, help="Head of a multi-head model.")
def evaluate(model: Path, data: Path, output: Path, batch_size: int, device: str, head: str | None) -> None:
    """Errors of MODEL (mace-torch .model) on DATA (extxyz with REF_energy/REF_forces).

    Writes metrics.json, metrics.md, parity_energy.png, parity_forces.png, predictions.extxyz.
    """
    from mlff2d.training.evaluate import evaluate_model, markdown_table

    res = evaluate_model(model, data, output, batch_size=batch_size, device=device, head=head)
    click.echo(markdown_table(res.metrics))


@click.command("export")
@click.argument("model", type=_PATH)
@click.option("-o", "--output", type=_PATH, required=True, help="Output folder.")
@click.option("--dtype", type=click.Choice(["float64", "float32"]), default="float64", show_default=True)
@click.option("--head", default=None, help="Head to export (required for multi-head models).")
def export(model: Path, output: Path, dtype: str, head: str | None) -> None:
    """Export MODEL to TorchScript for LAMMPS (<name>.model-lammps.pt + JSON sidecar)."""
    from mlff2d.training.export import export_model

    res = export_model(model, output, dtype=dtype, head=head)  # type: ignore[arg-type]
    click.echo(f"wrote {res.lammps_model} and {res.sidecar.name}; LAMMPS: {res.card.pair_coeff}")
