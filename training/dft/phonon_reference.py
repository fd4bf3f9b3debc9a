"""DFT phonon reference of pristine WSe2: GPAW forces for Phonopy displacements, resumable.

Three steps, each safe to interrupt and re-run (finished work is never redone):

    # 1. relax the primitive cell (in-plane lattice + positions) with GPAW, write the displaced
    #    4x4 supercells (0.01 Å) to data/wse2_gpaw_pbe/phonons/displacements.extxyz
    python training/dft/phonon_reference.py prepare
    # 2. label them through the dataset's label store (one file per displacement; --shard works)
    mlff2d label data/wse2_gpaw_pbe/phonons/displacements.extxyz --calculator gpaw \
        --profile training/dft/gpaw_pbe_phonons.yaml --store data/wse2_gpaw_pbe/labels
    # 3. force constants -> phonopy_params.yaml, band structure, Γ-mode table vs reference values
    python training/dft/phonon_reference.py finish

The profile is the dataset's (../shared/reference/wse2.md) with a tighter SCF convergence, as
finite differences of 0.01 Å need forces converged to ~1e-4 eV/Å. Run with OMP_NUM_THREADS=1
per process. The relaxation keeps an ASE trajectory (relax.traj) and restarts from its last frame.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "data" / "wse2_gpaw_pbe" / "phonons"
PROFILE = ROOT / "training" / "dft" / "gpaw_pbe_phonons.yaml"
STORE = ROOT / "data" / "wse2_gpaw_pbe" / "labels"

#: Literature Γ frequencies (THz) of monolayer 2H-WSe2 from ../shared/reference/wse2.md.
REFERENCE_GAMMA_THZ = {"E''": 5.25, "E'": 7.45, "A1'": 7.5, "A2''": 9.2}


def _labeller(profile: Path):
    from mlff2d.config import load_yaml
    from mlff2d.reference.registry import get_labeller

    return get_labeller("gpaw", load_yaml(profile))


def relax_primitive(out: Path, profile: Path, fmax: float) -> Path:
    """Relax a, the Se height and positions of the primitive cell with GPAW (resumable)."""
    from ase.filters import FrechetCellFilter
    from ase.io import read, write
    from ase.optimize import BFGS

    from mlff2d.structures import monolayer

    relaxed = out / "relaxed.extxyz"
    if relaxed.is_file():
        print(f"relaxed cell exists: {relaxed}")
        return relaxed
    traj = out / "relax.traj"
    atoms = monolayer("WSe2", vacuum=16.0)
    if traj.is_file() and traj.stat().st_size > 0:
        last = read(traj, index=-1)
        atoms.cell, atoms.positions = last.cell, last.positions
        print(f"restarting the relaxation from the last frame of {traj}")
    lab = _labeller(profile)
    atoms.calc = lab.prepare(atoms, out / "relax")
    opt = BFGS(
        FrechetCellFilter(atoms, mask=[1, 1, 0, 0, 0, 1]),
        trajectory=str(traj),
        append_trajectory=True,
        logfile=str(out / "relax.log"),
    )
    if not opt.run(fmax=fmax, steps=200):
        sys.exit(f"relaxation not converged to fmax {fmax} eV/Å in 200 steps: see {out / 'relax.log'}")
    final = atoms.copy()
    final.calc = None
    final.info = {
        "config_type": "pristine",
        "a": float(atoms.cell.lengths()[0]),
        "energy_eV": float(atoms.get_potential_energy()),
        "kpts": atoms.info["kpts"],
    }
    write(relaxed, final, format="extxyz")
    print(f"relaxed: a = {final.info['a']:.4f} Å -> {relaxed}")
    return relaxed


def prepare(args: argparse.Namespace) -> None:
    """Relax, then write phonopy_disp.yaml and the displaced supercells."""
    from ase.io import read, write

    from mlff2d.phonons.core import from_phonopy, make_phonopy

    args.out.mkdir(parents=True, exist_ok=True)
    unit = read(relax_primitive(args.out, args.profile, args.fmax))
    phonon = make_phonopy(unit, (args.supercell, args.supercell))
    phonon.generate_displacements(distance=args.displacement)
    phonon.save(args.out / "phonopy_disp.yaml")
    cells = []
    for i, c in enumerate(phonon.supercells_with_displacements):
        a = from_phonopy(c)
        a.info = {"config_type": "phonon_displacement", "displacement_index": i}
        cells.append(a)
    disp = args.out / "displacements.extxyz"
    if not disp.is_file():  # keep the first version: its keys are the ones being labelled
        write(disp, cells, format="extxyz")
    n = args.supercell
    print(f"{len(cells)} displaced {n}x{n} supercells ({len(cells[0])} atoms) in {disp}")
    print(f"next: mlff2d label {disp} --calculator gpaw --profile {args.profile} --store {args.store}")


def finish(args: argparse.Namespace) -> None:
    """Force constants from the stored labels; phonopy_params.yaml, bands, Γ-mode table."""
    import phonopy
    from ase.io import read

    from mlff2d.labeling import LabelStore, structure_key
    from mlff2d.phonons.core import band_path, gamma_modes
    from mlff2d.units import THZ_TO_CM1

    lab = _labeller(args.profile)
    store = LabelStore(args.store)
    cells = read(args.out / "displacements.extxyz", index=":")
    keys = [structure_key(a, lab.settings_hash) for a in cells]
    missing = [k for k in keys if store.status(k) != "done"]
    if missing:
        sys.exit(f"{len(missing)} of {len(keys)} displacements not labelled yet (run step 2 again)")
    forces = np.array([store.read(k).arrays["REF_forces"] for k in keys])
    forces -= forces.mean(axis=1, keepdims=True)  # remove the drift of a plane-wave calculation
    phonon = phonopy.load(args.out / "phonopy_disp.yaml", produce_fc=False, log_level=0)
    phonon.forces = forces
    phonon.produce_force_constants()
    phonon.symmetrize_force_constants()
    phonon.save(args.out / "phonopy_params.yaml")
    bands = band_path(phonon, npoints=101)
    bands.write(args.out / "bands.npz")
    modes = gamma_modes(phonon)
    rows = [
        {"mode": i, "irrep": lbl, "THz": round(float(f), 4), "cm-1": round(float(f) * THZ_TO_CM1, 2)}
        for i, (f, lbl) in enumerate(zip(modes.frequencies, modes.labels, strict=True))
    ]
    comparison = {}
    for irrep, ref in REFERENCE_GAMMA_THZ.items():
        got = [r["THz"] for r in rows if _ascii_irrep(r["irrep"]) == irrep]
        if got:
            comparison[irrep] = {
                "dft_THz": got[0],
                "reference_THz": ref,
                "rel_diff": round(got[0] / ref - 1, 4),
            }
    table = {
        "gamma_modes": rows,
        "vs_reference_wse2_md": comparison,
        "min_frequency_THz": float(bands.frequencies.min()),
        "settings_hash": lab.settings_hash,
        "a_angstrom": float(phonon.unitcell.cell[0][0]),
    }
    (args.out / "gamma_modes.yaml").write_text(yaml.safe_dump(table, sort_keys=False, allow_unicode=True))
    _plot(bands, args.out / "bands.png")
    for r in rows:
        print(f"{r['mode']:2d} {r['irrep']:>5s} {r['THz']:8.3f} THz {r['cm-1']:8.1f} cm-1")
    print(f"wrote phonopy_params.yaml, bands.npz, bands.png, gamma_modes.yaml in {args.out}")


def _ascii_irrep(name: str) -> str:
    """Plain-ASCII irrep name: A₁′ -> A1', E″ -> E''."""
    return name.translate(str.maketrans({"₁": "1", "₂": "2", "′": "'", "″": "''"}))


def _plot(bands, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mlff2d.units import THZ_TO_CM1

    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.plot(bands.distances, bands.frequencies, color="k", lw=1)
    ax.set_xticks(bands.tick_distances, bands.tick_labels)
    ax.set_xlim(bands.distances[0], bands.distances[-1])
    ax.set_ylabel("frequency (THz)")
    ax.secondary_yaxis("right", functions=(lambda f: f * THZ_TO_CM1, lambda c: c / THZ_TO_CM1)).set_ylabel(
        "cm⁻¹"
    )
    ax.set_title("WSe₂ GPAW-PBE (4×4, 0.01 Å)")
    fig.tight_layout()
    fig.savefig(path, dpi=150)


def main() -> None:
    """Command line: ``prepare`` or ``finish``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=["prepare", "finish"])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--profile", type=Path, default=PROFILE)
    ap.add_argument("--store", type=Path, default=STORE)
    ap.add_argument("--supercell", type=int, default=4, help="N of the N x N x 1 supercell (≥ 4).")
    ap.add_argument("--displacement", type=float, default=0.01, help="Å")
    ap.add_argument("--fmax", type=float, default=1e-3, help="relaxation threshold (eV/Å)")
    args = ap.parse_args()
    {"prepare": prepare, "finish": finish}[args.step](args)


if __name__ == "__main__":
    main()
