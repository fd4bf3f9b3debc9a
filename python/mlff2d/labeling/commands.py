"""CLI: ``mlff2d label``, ``mlff2d label collect`` and ``mlff2d dataset``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlff2d.labeling.workflow import DatasetSettings, DatasetWorkflow
from mlff2d.settings import cli_options, settings_from_cli


class _DefaultGroup(click.Group):
    """A group that runs its ``run`` sub-command when the first argument is not a sub-command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:  # noqa: D102
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        elif not args:
            args = ["run", "--help"]
        return super().parse_args(ctx, args)


@click.group("label", cls=_DefaultGroup)
def label() -> None:
    r"""Label structures with a reference calculator, resumably, one file per calculation.

    \b
    mlff2d label cells.extxyz --calculator sw --store runs/labels -o labelled.extxyz
    mlff2d label cells.extxyz --calculator gpaw --profile training/dft/gpaw_pbe.yaml --shard 3/16
    mlff2d label collect runs/labels -o dataset.extxyz
    """


@label.command("run")
@click.argument("structures", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--calculator", default="sw", show_default=True, help="sw, gpaw, vasp or espresso.")
@click.option(
    "--profile",
    type=click.Path(path_type=Path),
    default=None,
    help="Calculator settings YAML (e.g. training/dft/gpaw_pbe.yaml).",
)
@click.option(
    "--store",
    type=click.Path(path_type=Path),
    default=Path("runs/labels"),
    show_default=True,
    help="Label store folder: one file per finished calculation.",
)
@click.option("--shard", default=None, help="Compute only shard i of N (i/N, 0-based), for job arrays.")
@click.option("--retry-failed", is_flag=True, help="Recompute calculations that failed before.")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the labelled structures (input order) to this extxyz file.",
)
def label_run(
    structures: tuple[Path, ...],
    calculator: str,
    profile: Path | None,
    store: Path,
    shard: str | None,
    retry_failed: bool,
    output: Path | None,
) -> None:
    """Label STRUCTURES (extxyz files, all frames) and write each result to the store."""
    from ase.io import write

    from mlff2d.config import load_yaml
    from mlff2d.labeling import LabelStore, label_structures
    from mlff2d.labeling.label import parse_shard
    from mlff2d.reference.registry import get_labeller
    from mlff2d.runinfo import RunRecord, write_summary
    from mlff2d.structures import read_structure

    shard_ = parse_shard(shard)
    named = [(f"{p} frame {i}", a) for p in structures for i, a in enumerate(read_structure(p, index=":"))]
    frames = [atoms for _, atoms in named]
    settings = load_yaml(profile) if profile else {}
    labeller = get_labeller(calculator, settings)
    for where, atoms in named:  # every structure against the calculator's rules, before anything is written
        labeller.check_structure(atoms, where)
    lstore = LabelStore(store)
    rec = RunRecord(
        "label",
        config={
            "calculator": calculator,
            "profile": str(profile) if profile else None,
            "settings": labeller.settings,
            "shard": shard,
            "settings_hash": labeller.settings_hash,
        },
        inputs={f"structures{i}": str(p) for i, p in enumerate(structures)},
    )
    with rec.timer("label"):
        rep = label_structures(frames, labeller, lstore, shard_, retry_failed)
    rec.results = {
        "n_structures": len(frames),
        "computed": rep.computed,
        "skipped": rep.skipped,
        "failed": rep.failed,
        "other_shard": rep.other_shard,
    }
    if output is not None:
        done = [lstore.read(k) for k in rep.keys if lstore.status(k) == "done"]
        output.parent.mkdir(parents=True, exist_ok=True)
        write(output, done, format="extxyz")
        rec.outputs["labelled"] = str(output)
    write_summary(store, rec)
    click.echo(
        f"{len(frames)} structures: {rep.computed} computed, {rep.skipped} already done, "
        f"{rep.failed} failed, {rep.other_shard} left to other shards; store {store}"
    )
    if rep.failed:
        click.echo(f"failures are recorded with their reason in {store}/*.failed.json and excluded")


@label.command("collect")
@click.argument("store", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Output extxyz.")
def label_collect(store: Path, output: Path) -> None:
    """Gather every finished label of STORE into one extxyz file (failures listed, excluded)."""
    from ase.io import write

    from mlff2d.labeling import LabelStore

    lstore = LabelStore(store)
    frames = [lstore.read(k) for k in lstore.keys()]
    output.parent.mkdir(parents=True, exist_ok=True)
    write(output, frames, format="extxyz")
    fails = lstore.failures()
    click.echo(f"wrote {output}: {len(frames)} labelled structures; {len(fails)} failed (excluded)")
    for f in fails:
        click.echo(f"  failed {f['key']}: {f['reason']}")


@click.command("dataset")
@cli_options(DatasetSettings)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option(
    "--force", is_flag=True, help="Rebuild the splits even if finished (labels in the store are kept)."
)
def dataset(output: Path, force: bool, **kwargs: Any) -> None:
    """Generate, label and split a dataset RECIPE into train/valid/test extxyz.

    Example: mlff2d dataset training/datasets/wse2_sw_quick.yaml -o runs/data
    """
    workflow = DatasetWorkflow(settings_from_cli(DatasetSettings, kwargs), output, force=force)
    res = workflow.run()
    if workflow.status == "reused":
        click.echo(f"{output}: finished with this recipe, reused (--force to rebuild): {res.describe()}")
    else:
        click.echo(
            f"wrote {output}/{{train,valid,test}}.extxyz: {res.describe()}, "
            f"{res.computed_now} labels computed now; provenance.yaml"
        )
