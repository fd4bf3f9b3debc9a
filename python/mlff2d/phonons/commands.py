"""CLI: ``mlff2d phonons [run] STRUCTURE ...`` and ``mlff2d phonons compare A B``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

logger = logging.getLogger(__name__)


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


ENGINE_CHOICES = ["auto", "ase", "lammps", "mace-batched", "mace-hessian"]


@phonons.command("run")
@click.argument("structure", default="WSe2")
@click.option(
    "--calculator",
    type=click.Choice(["sw", "mace"]),
    default=None,
    help="Force field: the SW teacher or a MACE model (default: mace with --model).",
)
@click.option("--model", type=click.Path(path_type=Path), default=None, help="MACE *.model file.")
@click.option(
    "--engine",
    type=click.Choice(ENGINE_CHOICES),
    default="auto",
    show_default=True,
    help="Force engine (auto: mace-batched for MACE, ase for SW).",
)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda or auto.")
@click.option("--batch-size", type=int, default=None, help="MACE structures per pass (auto).")
@click.option(
    "--supercell",
    nargs=2,
    type=int,
    default=(6, 6),
    show_default=True,
    help="Pristine phonopy supercell N M.",
)
@click.option("--defect", default=None, help="Also run a defect supercell: V_Se, V_W, Mo_W, ...")
@click.option(
    "--defect-structure",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Defect supercell file (extxyz with defect_center) instead of --defect.",
)
@click.option(
    "--defect-supercell",
    nargs=2,
    type=int,
    default=(12, 12),
    show_default=True,
    help="Size of the defect supercell built for --defect.",
)
@click.option("--displacement", type=float, default=0.01, show_default=True, help="Å.")
@click.option(
    "--fmax", type=float, default=1e-4, show_default=True, help="Pristine relaxation tolerance (eV/Å)."
)
@click.option(
    "--defect-fmax", type=float, default=2e-3, show_default=True, help="Defect relaxation tolerance (eV/Å)."
)
@click.option("--relax/--no-relax", default=True, show_default=True)
@click.option(
    "--symmetrize/--no-symmetrize",
    default=True,
    show_default=True,
    help="Symmetrise force constants (translational invariance).",
)
@click.option("--npoints", type=int, default=51, show_default=True, help="q-points per segment.")
@click.option("--mesh", type=int, default=30, show_default=True, help="Pristine DOS mesh N×N.")
@click.option("--defect-mesh", type=int, default=2, show_default=True, help="Defect DOS mesh.")
@click.option("--sigma", type=float, default=0.05, show_default=True, help="DOS smearing (THz).")
@click.option(
    "--unfold-npoints", type=int, default=31, show_default=True, help="q-points per segment for unfolding."
)
@click.option(
    "--unfold-sigma", type=float, default=0.1, show_default=True, help="Unfolded map smearing (THz)."
)
@click.option(
    "--shell-width",
    type=float,
    default=2.0,
    show_default=True,
    help="Radial shell width for the local PDOS (Å).",
)
@click.option(
    "--localisation-radius",
    type=float,
    default=4.0,
    show_default=True,
    help="Radius around the defect for the mode weight (Å).",
)
@click.option("--figures/--no-figures", default=True, show_default=True)
@click.option("--force", is_flag=True, help="Discard cached forces and relaxed structures.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Output folder.")
def run(
    structure: str,
    calculator: str | None,
    model: Path | None,
    engine: str,
    device: str,
    batch_size: int | None,
    defect: str | None,
    defect_structure: Path | None,
    defect_supercell: tuple[int, int],
    force: bool,
    output: Path,
    **settings: Any,
) -> None:
    """Phonons of STRUCTURE (a formula like WSe2 or a primitive-cell file), optionally a defect.

    Example: mlff2d phonons WSe2 --model m.model --defect V_Se --defect-supercell 12 12 -o out
    """
    import shutil

    from mlff2d.errors import InputError
    from mlff2d.phonons.workflow import DefectPhonons, PhononSettings, PristinePhonons
    from mlff2d.runinfo import RunRecord, write_summary

    s = PhononSettings(**{k: tuple(v) if isinstance(v, tuple) else v for k, v in settings.items()})
    calculator = calculator or ("mace" if model else "sw")
    if calculator == "mace" and model is None:
        raise InputError("--calculator mace needs --model", "pass --model path/to/model.model")
    if defect and defect_structure:
        raise InputError("give --defect or --defect-structure, not both")
    if force:
        for sub in ("pristine", "defect"):
            shutil.rmtree(output / sub, ignore_errors=True)
    rec = RunRecord(
        "phonons",
        config={
            "structure": structure,
            "calculator": calculator,
            "model": str(model) if model else None,
            "engine": engine,
            "device": device,
            "batch_size": batch_size,
            "defect": defect,
            "defect_structure": str(defect_structure) if defect_structure else None,
            "defect_supercell": list(defect_supercell),
            "settings": s,
        },
    )
    if model:
        rec.inputs["model"] = str(model)
    if Path(structure).is_file():
        rec.inputs["structure"] = structure
    if defect_structure:
        rec.inputs["defect_structure"] = str(defect_structure)
    if not force and _finished(output, rec):
        click.echo(f"{output} is finished with the same settings; nothing to do (use --force to redo)")
        return
    calc, eng = build_calculator_and_engine(calculator, model, engine, device, batch_size)
    prim = _primitive(structure, rec)
    pristine = PristinePhonons(prim, calc, eng, output / "pristine", s)
    with rec.timer("pristine"):
        rec.results["pristine"] = pristine.run()
    rec.results["pristine"].update(pristine.record.results)
    rec.timings.update({f"pristine.{k}": v for k, v in pristine.record.timings.items()})
    rec.outputs.update({f"pristine.{k}": str(v) for k, v in pristine.output_files.items()})
    _print_gamma(pristine)
    cell = _defect_cell(prim, defect, defect_structure, defect_supercell, rec)
    if cell is not None:
        wf = DefectPhonons(cell, calc, eng, output / "defect", pristine, s)
        with rec.timer("defect"):
            rec.results["defect"] = wf.run()
        rec.results["defect"].update(wf.record.results)
        rec.timings.update({f"defect.{k}": v for k, v in wf.record.timings.items()})
        rec.outputs.update({f"defect.{k}": str(v) for k, v in wf.output_files.items()})
    rec.config["engine_resolved"] = eng.describe()  # with the tuned batch size
    path = write_summary(output, rec)
    click.echo(f"wrote {path}")


def _finished(output: Path, rec: Any) -> bool:
    """Check for a finished run in ``output`` with the same config and input files."""
    import yaml

    from mlff2d.config import to_dict
    from mlff2d.runinfo import file_hash

    path = output / "summary.yaml"
    if not path.is_file():
        return False
    old = yaml.safe_load(path.read_text())
    config = dict(old.get("config", {}))
    config.pop("engine_resolved", None)
    same_inputs = all(
        (old.get("inputs", {}).get(k) or {}).get("sha256") == file_hash(v) for k, v in rec.inputs.items()
    )
    outputs = [Path(p) for p in old.get("outputs", {}).values()]
    return config == to_dict(rec.config) and same_inputs and all(p.exists() for p in outputs)


def build_calculator_and_engine(
    calculator: str, model: Path | None, engine: str, device: str, batch_size: int | None
) -> tuple[Any, Any]:
    """Return the ASE calculator (for relaxation) and the force engine for the CLI options."""
    from mlff2d.errors import InputError
    from mlff2d.phonons.engine import ASEEngine, make_engine

    if calculator == "sw":
        from mlff2d.reference.sw import SWTeacher

        if engine not in ("auto", "ase", "lammps"):
            raise InputError(f"engine {engine!r} needs a MACE model", "use --engine ase")
        calc = SWTeacher()
        return calc, ASEEngine(calc)
    from mlff2d.phonons.engine import load_mace_calculator

    calc = load_mace_calculator(model, device)
    if engine in ("auto", "mace-batched", "mace-hessian"):
        name = "mace-batched" if engine == "auto" else engine
        return calc, make_engine(name, model=calc, batch_size=batch_size)
    if engine == "lammps":
        raise InputError("the lammps engine runs the SW teacher only", "use --calculator sw")
    return calc, ASEEngine(calc)


def _primitive(structure: str, rec: Any) -> Any:
    from mlff2d.structures import check_2d, monolayer, read_structure

    if Path(structure).is_file():
        rec.inputs["structure"] = structure
        atoms = read_structure(structure)
    else:
        atoms = monolayer(structure)
    check_2d(atoms)
    return atoms


def _defect_cell(prim: Any, defect: str | None, path: Path | None, size: tuple[int, int], rec: Any) -> Any:
    from mlff2d.structures import make_defect, read_structure, supercell

    if path is not None:
        rec.inputs["defect_structure"] = str(path)
        return read_structure(path)
    if defect is None:
        return None
    return make_defect(supercell(prim, *size), defect)


def _print_gamma(wf: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="Γ modes (pristine)")
    for c in ("irrep", "THz", "cm⁻¹"):
        t.add_column(c)
    for m in wf.results["gamma_modes"]:
        t.add_row(m["irrep"] or "acoustic", f"{m['THz']:.3f}", f"{m['cm-1']:.1f}")
    Console(stderr=True).print(t)


@phonons.command("compare")
@click.argument("a", type=click.Path(exists=True, path_type=Path))
@click.argument("b", type=click.Path(exists=True, path_type=Path))
@click.option("--label-a", default=None, help="Legend label of A (default: its path).")
@click.option("--label-b", default=None, help="Legend label of B (default: its path).")
@click.option("--npoints", type=int, default=51, show_default=True, help="q-points per segment.")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Output folder.")
def compare(a: Path, b: Path, label_a: str | None, label_b: str | None, npoints: int, output: Path) -> None:
    """Compare two phonon results (phonopy_params.yaml or `mlff2d phonons` folders) on Γ–M–K–Γ.

    Prints the RMS and maximum frequency difference of B relative to A along the path and the
    Γ-mode differences, and draws an overlay figure.
    """
    from mlff2d.phonons.compare import compare_phonons, load_phonopy
    from mlff2d.phonons.plots import plot_overlay
    from mlff2d.runinfo import RunRecord, write_summary
    from mlff2d.units import THZ_TO_CM1

    rec = RunRecord("phonons compare", config={"a": str(a), "b": str(b), "npoints": npoints})
    with rec.timer("compare"):
        comp, ba, bb = compare_phonons(load_phonopy(a), load_phonopy(b), npoints)
    labels = (label_a or str(a), label_b or str(b))
    files = plot_overlay(ba, bb, labels, output / "compare_bands")
    rec.outputs.update({f"compare_bands_{k}": str(v) for k, v in files.items()})
    rec.results = comp.as_dict()
    write_summary(output, rec)
    click.echo(
        f"RMS |Δf| = {comp.rms_thz:.4f} THz ({comp.rms_thz * THZ_TO_CM1:.2f} cm⁻¹), "
        f"max |Δf| = {comp.max_thz:.4f} THz along Γ–M–K–Γ"
    )
    for g in comp.gamma:
        rel = f", {100 * g['rel_diff']:+.2f} %" if g["rel_diff"] is not None else ""
        click.echo(
            f"  Γ {g['irrep'] or 'acoustic':>8}: {g['a_THz']:8.4f} → {g['b_THz']:8.4f} THz"
            f"  (Δ {g['diff_THz']:+.4f}{rel})"
        )
    if comp.max_optical_rel is not None:
        click.echo(f"largest optical Γ-mode difference: {100 * comp.max_optical_rel:.2f} %")
    click.echo(f"wrote {output / 'summary.yaml'}")
