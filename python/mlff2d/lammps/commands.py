"""CLI: ``mlff2d md``."""

from __future__ import annotations

import logging
from pathlib import Path

import click

logger = logging.getLogger(__name__)


@click.command("md")
@click.argument("material", default="WSe2")
@click.option(
    "--supercell",
    "supercell_",
    nargs=2,
    type=int,
    default=(12, 12),
    show_default=True,
    help="In-plane repetitions N M (ignored when MATERIAL is a structure file).",
)
@click.option("--defect", default="V_Se", show_default=True, help="Defect name, or 'none'.")
@click.option(
    "--pair",
    type=click.Choice(["mace", "sw"]),
    default="mace",
    show_default=True,
    help="MACE through the LAMMPS plugin, or the SW teacher.",
)
@click.option(
    "--model", type=click.Path(path_type=Path), default=None, help="Exported *.model-lammps.pt (pair mace)."
)
@click.option("--mace-options", default="", help="Extra pair_style mace keywords, e.g. 'device cuda'.")
@click.option("-T", "--temperature", type=float, default=300.0, show_default=True, help="K.")
@click.option("--dt", type=float, default=1.0, show_default=True, help="Time step (fs).")
@click.option(
    "--equil-steps", type=int, default=5000, show_default=True, help="Langevin equilibration steps."
)
@click.option("--steps", type=int, default=10000, show_default=True, help="NVE production steps.")
@click.option(
    "--dump-every",
    type=int,
    default=5,
    show_default=True,
    help="Dump positions+velocities every N production steps (0: none).",
)
@click.option(
    "--dump-format",
    type=click.Choice(["extxyz", "lammps"]),
    default="extxyz",
    show_default=True,
    help="extxyz (dynasor 'extxyz') or LAMMPS custom text.",
)
@click.option("--minimize/--no-minimize", default=True, show_default=True)
@click.option("--tdamp", type=float, default=100.0, show_default=True, help="Langevin damping (fs).")
@click.option("--thermo", type=int, default=100, show_default=True, help="Thermo output interval.")
@click.option("--seed", type=int, default=12345, show_default=True)
@click.option("-n", "--nprocs", type=int, default=1, show_default=True, help="MPI ranks (mpirun -np).")
@click.option("--threads", type=int, default=1, show_default=True, help="OMP/torch threads per rank.")
@click.option(
    "--input",
    "input_",
    type=click.Path(path_type=Path),
    default=None,
    help="LAMMPS input (default lammps_inputs/in.wse2_defect).",
)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--force", is_flag=True, help="Rerun even if a finished run is there.")
def md(
    material: str,
    supercell_: tuple[int, int],
    defect: str,
    pair: str,
    model: Path | None,
    mace_options: str,
    temperature: float,
    dt: float,
    equil_steps: int,
    steps: int,
    dump_every: int,
    dump_format: str,
    minimize: bool,
    tdamp: float,
    thermo: int,
    seed: int,
    nprocs: int,
    threads: int,
    input_: Path | None,
    output: Path,
    force: bool,
) -> None:
    """LAMMPS MD of a (defective) 2D supercell: minimise, equilibrate at T, NVE production.

    Example: mlff2d md WSe2 --supercell 12 12 --defect V_Se --model m.model-lammps.pt -o runs/md
    """
    from mlff2d.lammps.md import MDConfig, MDRun
    from mlff2d.units import nyquist_thz, resolution_thz

    cfg = MDConfig(
        material=material,
        supercell=tuple(supercell_),
        defect=None if defect == "none" else defect,
        pair=pair,
        model=str(model) if model else None,
        mace_options=mace_options,
        temperature=temperature,
        dt=dt,
        equil_steps=equil_steps,
        steps=steps,
        dump_every=dump_every,
        dump_format=dump_format,
        minimize=minimize,
        tdamp=tdamp,
        thermo=thermo,
        seed=seed,
        nprocs=nprocs,
        threads=threads,
        input=str(input_) if input_ else None,
    )
    run = MDRun(cfg, output, force=force)
    if dump_every:
        n = run.expected_frames()
        click.echo(
            f"sampling every {dt * dump_every:g} fs ({n} frames): Nyquist "
            f"{nyquist_thz(dt, dump_every):.2f} THz, resolution "
            f"{resolution_thz(dt, dump_every, max(n - 1, 1)):.4f} THz"
        )
    res = run.run()
    if res.get("skipped"):
        click.echo(f"{output}: finished run found, nothing to do (--force to rerun)")
        return
    click.echo(
        f"wrote {output}: {res['n_atoms']} atoms, {res['frames']} frames, "
        f"<T> = {res['mean_temperature_K']:.1f} K, NVE drift "
        f"{res['nve_drift_meV_per_atom_per_ps']:.3g} meV/atom/ps, "
        f"{res['ms_per_step']:.1f} ms/step ({res['ns_per_day']:.3g} ns/day)"
    )
