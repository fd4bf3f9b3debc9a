"""Slurm job scripts for the three engines that scale beyond one machine.

The toolkit writes job scripts; it does not schedule anything itself:

* ``label``: a job array, one task per ``--shard i/N`` of ``mlff2d label`` (no shared lock:
  every calculation is its own file in the label store);
* ``train``: ``torchrun`` over the GPUs of one or more nodes running ``mlff2d train`` with
  mace-torch's ``--distributed`` mode;
* ``md``: multi-GPU LAMMPS with the same ``lammps_inputs/in.wse2_defect`` and our
  ``pair_style mace`` (one MPI rank per GPU, domain decomposition).

CLI: ``mlff2d slurm label|train|md ... -o jobs/``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import click

from mlff2d.errors import InputError


@dataclass
class SlurmOptions:
    """Common ``#SBATCH`` options and environment set-up.

    Attributes
    ----------
    job_name, partition, account
        Slurm job name, partition and account (empty: omitted).
    time
        Wall-time limit, ``HH:MM:SS``.
    nodes
        Number of nodes.
    gpus_per_node
        GPUs per node (0 for CPU jobs).
    cpus_per_task
        CPU cores per task.
    setup
        Shell lines run before the command (``module load ...``, ``source venv/bin/activate``).
    """

    job_name: str = "mlff2d"
    partition: str = ""
    account: str = ""
    time: str = "12:00:00"
    nodes: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int = 1
    ntasks_per_node: int = 1
    setup: list[str] = field(default_factory=lambda: ["source .venv/bin/activate"])

    def __post_init__(self) -> None:
        for option, value, least in (
            ("--nodes", self.nodes, 1),
            ("--gpus-per-node", self.gpus_per_node, 0),
            ("--cpus-per-task", self.cpus_per_task, 1),
        ):
            _at_least(option, value, least)
        if not re.fullmatch(r"(\d+-)?\d+(:\d+){0,2}", self.time):
            raise InputError(
                f"--time: {self.time!r} is not a Slurm time limit",
                "write it as HH:MM:SS, MM, or D-HH:MM:SS (e.g. 12:00:00)",
            )

    def header(self, extra: list[str] | None = None) -> str:
        """The ``#!/bin/bash`` line and ``#SBATCH`` directives."""
        lines = [
            "#!/bin/bash",
            f"#SBATCH --job-name={self.job_name}",
            f"#SBATCH --time={self.time}",
            f"#SBATCH --nodes={self.nodes}",
            f"#SBATCH --ntasks-per-node={self.ntasks_per_node}",
            f"#SBATCH --cpus-per-task={self.cpus_per_task}",
            "#SBATCH --output=logs/%x-%A_%a.out"
            if extra and any("array" in e for e in extra)
            else "#SBATCH --output=logs/%x-%j.out",
        ]
        if self.partition:
            lines.append(f"#SBATCH --partition={self.partition}")
        if self.account:
            lines.append(f"#SBATCH --account={self.account}")
        if self.gpus_per_node:
            lines.append(f"#SBATCH --gpus-per-node={self.gpus_per_node}")
        lines += [f"#SBATCH {e}" for e in (extra or [])]
        lines += [
            "set -euo pipefail",
            "mkdir -p logs",
            *self.setup,
            f"export OMP_NUM_THREADS={self.cpus_per_task}",
            "",
        ]
        return "\n".join(lines)


def _at_least(option: str, value: float, least: float) -> None:
    """Refuse ``value`` below ``least``, naming the option."""
    if value < least:
        raise InputError(f"{option}: {value:g} is below the minimum {least:g}", f"use a value ≥ {least:g}")


def label_job(
    structures: str, calculator: str, profile: str, store: str, shards: int, opts: SlurmOptions
) -> str:
    """A job array labelling ``structures`` in ``shards`` independent tasks."""
    if shards < 1:
        raise InputError(f"--shards: shards = {shards} is invalid", "use at least 1")
    prof = f" --profile {profile}" if profile else ""
    body = (
        f"mlff2d label {structures} --calculator {calculator}{prof} --store {store} "
        f"--shard ${{SLURM_ARRAY_TASK_ID}}/{shards}\n"
        f"# when every task has finished: mlff2d label collect {store} -o {store}/../labelled.extxyz\n"
    )
    return opts.header([f"--array=0-{shards - 1}"]) + body


def train_job(config: str, data: str, outdir: str, opts: SlurmOptions) -> str:
    """Distributed MACE training with ``torchrun`` (one process per GPU)."""
    if opts.gpus_per_node < 1:
        raise InputError("training on a cluster needs GPUs", "pass --gpus-per-node N (N ≥ 1)")
    opts.ntasks_per_node = 1
    body = (
        'export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
        "export MASTER_PORT=29500\n"
        f"srun torchrun --nnodes={opts.nodes} --nproc_per_node={opts.gpus_per_node} "
        "--rdzv_backend=c10d --rdzv_endpoint=$MASTER_ADDR:$MASTER_PORT \\\n"
        f"    $(which mlff2d) train {config} --data {data} -o {outdir} --device cuda --distributed\n"
        f"# resubmitting the same script resumes from the last mace-torch checkpoint in {outdir}\n"
    )
    return opts.header() + body


def md_job(
    model: str,
    n_atoms: int,
    defect: str,
    temperature: float,
    steps: int,
    opts: SlurmOptions,
    lammps: str = "lmp",
    plugin_dir: str = "build/plugin",
) -> str:
    """Multi-GPU LAMMPS MD of a ≈ ``n_atoms`` WSe2 supercell with the plugin (one rank per GPU)."""
    _at_least("--atoms", n_atoms, 1)
    _at_least("--temperature", temperature, 0)
    _at_least("--steps", steps, 0)
    n = max(1, math.ceil(math.sqrt(n_atoms / 3)))
    ranks = opts.nodes * max(opts.gpus_per_node, 1)
    opts.ntasks_per_node = max(opts.gpus_per_node, 1)
    body = (
        f"# {n} x {n} supercell = {3 * n * n} atoms before the defect; {ranks} MPI ranks, one GPU each\n"
        f"export LAMMPS_PLUGIN_PATH={plugin_dir}${{LAMMPS_PLUGIN_PATH:+:$LAMMPS_PLUGIN_PATH}}\n"
        f"srun {lammps} -in lammps_inputs/in.wse2_defect -var model {model} -var nx {n} -var ny {n} "
        f"-var defect {defect} -var T {temperature} -var steps {steps}\n"
    )
    return opts.header(["--gpus-per-task=1"] if opts.gpus_per_node else None) + body


_COMMON = [
    click.option(
        "-o",
        "--output",
        type=click.Path(path_type=Path),
        default=Path("jobs"),
        show_default=True,
        help="Folder for the job script.",
    ),
    click.option("--partition", default=""),
    click.option("--account", default=""),
    click.option("--time", "time_", default="12:00:00", show_default=True),
    click.option("--nodes", type=int, default=1, show_default=True),
    click.option("--gpus-per-node", type=int, default=0, show_default=True),
    click.option("--cpus-per-task", type=int, default=1, show_default=True),
    click.option("--setup", multiple=True, help="Shell line before the command (repeatable)."),
]


def _common(f):
    for dec in reversed(_COMMON):
        f = dec(f)
    return f


def _opts(
    name: str,
    partition: str,
    account: str,
    time_: str,
    nodes: int,
    gpus_per_node: int,
    cpus_per_task: int,
    setup: tuple[str, ...],
) -> SlurmOptions:
    return SlurmOptions(
        job_name=name,
        partition=partition,
        account=account,
        time=time_,
        nodes=nodes,
        gpus_per_node=gpus_per_node,
        cpus_per_task=cpus_per_task,
        setup=list(setup) or ["source .venv/bin/activate"],
    )


def _write(output: Path, name: str, text: str) -> None:
    output.mkdir(parents=True, exist_ok=True)
    path = output / f"{name}.slurm"
    path.write_text(text)
    path.chmod(0o755)
    click.echo(f"wrote {path}; submit with: sbatch {path}")


@click.group("slurm")
def slurm() -> None:
    """Write Slurm job scripts: labelling shards, GPU training, multi-GPU LAMMPS."""


@slurm.command("label")
@click.argument("structures")
@click.option("--calculator", default="vasp", show_default=True)
@click.option("--profile", default="", help="Calculator profile YAML.")
@click.option("--store", default="runs/labels", show_default=True)
@click.option("--shards", type=int, default=16, show_default=True)
@_common
def slurm_label(structures, calculator, profile, store, shards, output, **kw) -> None:
    """A job array labelling STRUCTURES in independent shards."""
    _write(output, "label", label_job(structures, calculator, profile, store, shards, _opts("label", **kw)))


@slurm.command("train")
@click.argument("config")
@click.option("--data", default="runs/data", show_default=True)
@click.option("--outdir", default="runs/model", show_default=True)
@_common
def slurm_train(config, data, outdir, output, **kw) -> None:
    """Distributed MACE training (torchrun, one process per GPU)."""
    _write(output, "train", train_job(config, data, outdir, _opts("train", **kw)))


@slurm.command("md")
@click.option("--model", required=True, help="Exported *.model-lammps.pt (CUDA-capable torch build).")
@click.option("--atoms", "n_atoms", type=int, default=100_000, show_default=True)
@click.option("--defect", default="V_Se", show_default=True)
@click.option("--temperature", type=float, default=300.0, show_default=True)
@click.option("--steps", type=int, default=100_000, show_default=True)
@click.option("--lammps", default="lmp", show_default=True, help="The cluster's LAMMPS executable.")
@click.option("--plugin-dir", default="build/plugin", show_default=True)
@_common
def slurm_md(model, n_atoms, defect, temperature, steps, lammps, plugin_dir, output, **kw) -> None:
    """Multi-GPU LAMMPS MD of a large defective supercell with pair_style mace."""
    _write(
        output,
        "md",
        md_job(model, n_atoms, defect, temperature, steps, _opts("md", **kw), lammps, plugin_dir),
    )
