"""CLI: ``mlff2d phonons [run] STRUCTURE ...`` and ``mlff2d phonons compare A B``.

Options come from :class:`~mlff2d.phonons.stage.PhononsSettings` and
:class:`~mlff2d.phonons.stage.CompareSettings`; the workflows of :mod:`.stage` do the work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlff2d.phonons.stage import CompareSettings, CompareWorkflow, PhononsSettings, PhononsWorkflow
from mlff2d.settings import cli_options, settings_from_cli


class _DefaultGroup(click.Group):
    """A group whose first argument, when it is no sub-command, goes to ``run``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:  # noqa: D102
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        elif not args:
            args = ["run"]
        return super().parse_args(ctx, args)


@click.group("phonons", cls=_DefaultGroup)
def phonons() -> None:
    """Harmonic phonons with Phonopy: pristine bands/DOS, defect unfolding, local PDOS.

    `mlff2d phonons WSe2 --calculator sw -o runs/phonons` runs the default sub-command `run`;
    `mlff2d phonons compare A B -o OUT` compares two results on one path.
    """


_output = click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, help="Output folder."
)


@phonons.command("run")
@cli_options(PhononsSettings)
@click.option("--force", is_flag=True, help="Discard cached forces and relaxed structures; compute again.")
@_output
def run(force: bool, output: Path, **kwargs: Any) -> None:
    """Phonons of STRUCTURE (a formula like WSe2 or a primitive-cell file), optionally a defect.

    Example: mlff2d phonons WSe2 --model m.model --defect V_Se --defect-supercell 12 12 -o out
    """
    wf = PhononsWorkflow(settings_from_cli(PhononsSettings, kwargs), output, force=force)
    res = wf.run()
    if wf.status == "reused":
        click.echo(f"{output} is finished with the same settings; nothing to do (use --force to redo)")
        return
    _print_gamma(res.pristine.gamma_modes)
    click.echo(f"wrote {output / 'summary.yaml'}")


def _print_gamma(modes: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="Γ modes (pristine)")
    for c in ("irrep", "THz", "cm⁻¹"):
        t.add_column(c)
    for m in modes:
        t.add_row(m["irrep"] or "acoustic", f"{m['THz']:.3f}", f"{m['cm-1']:.1f}")
    Console(stderr=True).print(t)


@phonons.command("compare")
@cli_options(CompareSettings)
@_output
def compare(output: Path, **kwargs: Any) -> None:
    """Compare two phonon results (phonopy_params.yaml or `mlff2d phonons` folders) on Γ–M–K–Γ.

    Prints the RMS and maximum frequency difference of B relative to A along the path and the
    Γ-mode differences, and draws an overlay figure.
    """
    from mlff2d.units import THZ_TO_CM1

    res = CompareWorkflow(settings_from_cli(CompareSettings, kwargs), output).run()
    click.echo(
        f"RMS |Δf| = {res.rms_thz:.4f} THz ({res.rms_thz * THZ_TO_CM1:.2f} cm⁻¹), "
        f"max |Δf| = {res.max_thz:.4f} THz along Γ–M–K–Γ"
    )
    for g in res.gamma:
        rel = f", {100 * g['rel_diff']:+.2f} %" if g["rel_diff"] is not None else ""
        click.echo(
            f"  Γ {g['irrep'] or 'acoustic':>8}: {g['a_THz']:8.4f} → {g['b_THz']:8.4f} THz"
            f"  (Δ {g['diff_THz']:+.4f}{rel})"
        )
    if res.max_optical_rel is not None:
        click.echo(f"largest optical Γ-mode difference: {100 * res.max_optical_rel:.2f} %")
    click.echo(f"wrote {output / 'summary.yaml'}")
