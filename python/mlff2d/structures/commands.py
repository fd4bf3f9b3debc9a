"""CLI: ``mlff2d structure``."""

from __future__ import annotations

import logging
from pathlib import Path

import click

logger = logging.getLogger(__name__)


@click.command("structure")
@click.argument("material", default="WSe2")
@click.option(
    "--supercell",
    "supercell_",
    nargs=2,
    type=int,
    default=(1, 1),
    show_default=True,
    help="In-plane repetitions N M.",
)
@click.option("--defect", default=None, help="Defect name: V_Se, V_Se2, V_W, Se_W, W_Se, Mo_W, S_Se, ...")
@click.option("--site", type=int, default=None, help="Atom index of the defect site (default: central).")
@click.option(
    "--strain",
    "strain_",
    type=float,
    multiple=True,
    help="Strain as a fraction: once for biaxial (0.02), twice for exx eyy (uniaxial: 0.02 0).",
)
@click.option("--rattle", "rattle_", type=float, default=0.0, show_default=True, help="Rattle amplitude (Å).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed for rattling.")
@click.option("--a", "a", type=float, default=None, help="Lattice constant (Å); default per material.")
@click.option("--thickness", type=float, default=None, help="X–X vertical distance (Å).")
@click.option("--vacuum", type=float, default=20.0, show_default=True, help="Vacuum along z (Å).")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Output file.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["extxyz", "lammps-data"]),
    default=None,
    help="Output format (default from the suffix: .data/.lmp = LAMMPS data).",
)
def structure(
    material: str,
    supercell_: tuple[int, int],
    defect: str | None,
    site: int | None,
    strain_: tuple[float, ...],
    rattle_: float,
    seed: int,
    a: float | None,
    thickness: float | None,
    vacuum: float,
    output: Path,
    fmt: str | None,
) -> None:
    """Build a 2H MX2 monolayer (or read MATERIAL as a file), then supercell, defect, strain, rattle.

    Example: mlff2d structure WSe2 --supercell 12 12 --defect V_Se -o cell.extxyz
    """
    from mlff2d.runinfo import RunRecord, write_summary
    from mlff2d.structures import (
        make_defect,
        monolayer,
        rattle,
        read_structure,
        strain,
        supercell,
        write_structure,
    )
    from mlff2d.validate import check_structure

    rec = RunRecord(
        "structure",
        config={
            "material": material,
            "supercell": list(supercell_),
            "defect": defect,
            "site": site,
            "strain": list(strain_),
            "rattle": rattle_,
            "seed": seed,
            "a": a,
            "thickness": thickness,
            "vacuum": vacuum,
            "format": fmt,
        },
    )
    if Path(material).is_file():
        atoms = read_structure(material)
        rec.inputs["structure"] = material
    else:
        atoms = monolayer(material, a=a, thickness=thickness, vacuum=vacuum)
    check_structure(atoms, material)
    atoms = supercell(atoms, *supercell_)
    if strain_:
        atoms = strain(atoms, strain_[0] if len(strain_) == 1 else strain_)
    if defect:
        atoms = make_defect(atoms, defect, site)
    if rattle_:
        atoms = rattle(atoms, rattle_, seed)
    check_structure(atoms, "the built cell")
    write_structure(atoms, output, fmt)
    rec.outputs["structure"] = str(output)
    rec.results = {
        "n_atoms": len(atoms),
        "formula": atoms.get_chemical_formula(),
        "defect_center_A": atoms.info.get("defect_center"),
    }
    write_summary(output.parent, rec)
    msg = f"wrote {output}: {len(atoms)} atoms ({atoms.get_chemical_formula()})"
    if "defect_center" in atoms.info:
        msg += f", defect_center = {[round(float(x), 3) for x in atoms.info['defect_center']]} Å"
    click.echo(msg)
