"""CLI: ``mlff2d vdos`` and ``mlff2d dispersion`` (dynasor on LAMMPS trajectories).

Each command builds its settings from the options (generated from the settings dataclass), runs
the stage's workflow (:mod:`mlff2d.dynamics.workflow`) and prints what it found.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlff2d.dynamics.workflow import (
    DispersionSettings,
    DispersionWorkflow,
    VDOSSettings,
    VDOSWorkflow,
)
from mlff2d.settings import cli_options, settings_from_cli


def _output_options(func: Any) -> Any:
    """``-o/--output`` and ``--force``: where the stage writes, and whether to recompute."""
    func = click.option("--force", is_flag=True, help="Recompute even if the output folder is complete.")(
        func
    )
    return click.option(
        "-o", "--output", type=click.Path(path_type=Path), required=True, help="Output folder."
    )(func)


def _report(wf: VDOSWorkflow | DispersionWorkflow, text: str) -> None:
    """Print the result (or that it was reused) and the folder."""
    if wf.status == "reused":
        click.echo(f"{wf.outdir}: finished with the same settings and inputs, reused (--force to recompute)")
    click.echo(text)
    click.echo(f"wrote {wf.outdir} (summary.yaml)")


@click.command("vdos")
@cli_options(VDOSSettings)
@_output_options
def vdos(output: Path, force: bool, **options: Any) -> None:
    """Compute the vibrational DOS from MD velocities (dynasor): total, elements, shells.

    Mass-weighted (m_i |v_i(ν)|²), normalised to 3 N states; averaged over time windows.

    Example: mlff2d vdos runs/md/traj.extxyz --harmonic runs/phonons -o runs/vdos
    """
    wf = VDOSWorkflow(settings_from_cli(VDOSSettings, options), output, force=force)
    res = wf.run()
    _report(wf, res.describe())


@click.command("dispersion")
@cli_options(DispersionSettings)
@_output_options
def dispersion(output: Path, force: bool, **options: Any) -> None:
    """Compute current correlations C_L, C_T (dynasor) on the Γ–M–K–Γ q-points of the MD cell.

    Writes heat maps with the harmonic bands and a table of DHO peak centres and widths.

    Example: mlff2d dispersion runs/md/traj.extxyz --harmonic runs/phonons -o runs/disp
    """
    wf = DispersionWorkflow(settings_from_cli(DispersionSettings, options), output, force=force)
    res = wf.run()
    _report(wf, res.describe())
