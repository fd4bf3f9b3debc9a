"""Speed-up of a MACE model over GPAW-PBE on the same WSe2 V_Se cells, side by side in one run.

For each supercell size N (3 -> 3x3 V_Se, 26 atoms; 4 -> 47 atoms; ...) the same rattled cell is
evaluated by GPAW with the shipped profile (energy + forces, one SCF from scratch) and by a MACE
model (energy + forces, median of repeated evaluations after a warm-up). Written: wall times,
their ratio, and the power law t ∝ N_atoms^p of each code over the sizes.

    OMP_NUM_THREADS=1 python benchmarks/speedup_vs_dft.py --sizes 3 4 --model runs/train/wse2_gpaw.model \
        -o runs/bench/speedup_vs_dft.json

``--labels STORE`` adds the growth of GPAW with cell size from a label store (the CPU time every
label recorded, ``cpu_s``): per atom count, the median GPAW CPU time against MACE timed on one of
those labelled structures in this run, and the exponents of both.

    python benchmarks/speedup_vs_dft.py --skip-gpaw --labels data/wse2_gpaw_pbe/labels

Without ``--model`` an untrained ``ScaleShiftMACE`` of the given size is timed (the cost of a
MACE evaluation depends on the architecture, not on the weights). ``--quick`` uses one small cell
and reduced DFT settings (250 eV, Γ-point): GPAW is then faster than in production, so the
ratio is a lower bound.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy: one BLAS thread for GPAW
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
QUICK_PROFILE = {
    "calculator": "gpaw",
    "source": "gpaw-quick",
    "kdensity": 0.5,
    "parameters": {
        "mode": {"name": "pw", "ecut": 250.0},
        "xc": "PBE",
        "occupations": {"name": "fermi-dirac", "width": 0.05},
    },
}


def cell(n: int):
    """Rattled n x n WSe2 supercell with one Se vacancy (16 Å vacuum)."""
    from mlff2d.structures import make_defect, monolayer, rattle, supercell

    return rattle(make_defect(supercell(monolayer("WSe2", vacuum=16.0), n, n), "V_Se"), 0.03, seed=n)


def time_gpaw(atoms, profile: dict, workdir: Path) -> dict:
    """One GPAW energy + forces from scratch; wall and CPU time (s), SCF details."""
    from mlff2d.reference.registry import get_labeller

    lab = get_labeller("gpaw", profile)
    work = atoms.copy()
    calc = lab.prepare(work, workdir)
    work.calc = calc
    t0, c0 = time.perf_counter(), time.process_time()
    work.get_forces()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    text = (workdir / "gpaw.txt").read_text()
    n_scf = text.count("|iter:")
    return {
        "t_gpaw_s": wall,
        "cpu_gpaw_s": cpu,
        "kpts": work.info["kpts"],
        "scf_iterations": n_scf,
        "energy_eV": float(work.get_potential_energy()),
    }


def mace_calculator(model: str | None, channels: int, max_ell: int, threads: int):
    """mlff2d.training.calculator(model), or an untrained ScaleShiftMACE of the given size."""
    import torch

    torch.set_num_threads(threads)
    if model:
        from mlff2d.training.calculator import calculator

        return calculator(model, dtype="float64"), {"model": str(model)}
    from mace.calculators import MACECalculator

    from mlff2d.lammps.toymodel import random_mace
    from mlff2d.runtime import keep_allocator_memory

    keep_allocator_memory()
    arch = {
        "model": "untrained ScaleShiftMACE",
        "channels": channels,
        "max_ell": max_ell,
        "correlation": 3,
        "num_interactions": 2,
        "r_max": 5.0,
    }
    mdl = random_mace(channels=channels, max_ell=max_ell, correlation=3, r_max=5.0)
    return MACECalculator(models=mdl, device="cpu", default_dtype="float64"), arch


def time_mace(atoms, calc, repeats: int) -> tuple[float, float]:
    """Median wall and CPU time (s) of energy + forces on freshly displaced positions, after a warm-up."""
    work = atoms.copy()
    work.calc = calc
    work.get_forces()
    rng = np.random.default_rng(0)
    times, cpus = [], []
    for _ in range(repeats):
        work.positions = atoms.positions + rng.normal(0.0, 1e-3, atoms.positions.shape)
        t0, c0 = time.perf_counter(), time.process_time()
        work.get_potential_energy()
        work.get_forces()
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(times), statistics.median(cpus)


def label_rows(store: Path, calc, repeats: int) -> list[dict]:
    """Per atom count and settings of the labels in ``store``: median GPAW CPU time (s) vs MACE.

    MACE is timed now on one of the labelled structures of each group.
    """
    from ase.io import read

    groups: dict[tuple[int, str], list] = {}
    for path in sorted(store.glob("*.extxyz")):
        atoms = read(path)
        if "cpu_s" in atoms.info:
            groups.setdefault((len(atoms), str(atoms.info.get("settings_hash"))), []).append(atoms)
    rows = []
    for (n, settings), frames in sorted(groups.items()):
        gpaw = statistics.median(float(a.info["cpu_s"]) for a in frames)
        _, cpu_mace = time_mace(frames[0], calc, repeats)
        rows.append(
            {
                "n_atoms": n,
                "settings_hash": settings,
                "n_labels": len(frames),
                "kpts": frames[0].info.get("kpts"),
                "cpu_gpaw_s_median": gpaw,
                "cpu_mace_s": cpu_mace,
                "speedup_cpu": gpaw / cpu_mace,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def power_law(n: list[int], t: list[float]) -> float | None:
    """Exponent p of t ∝ n^p (least squares in log-log), None for fewer than two sizes."""
    if len(n) < 2:
        return None
    return float(np.polyfit(np.log(n), np.log(t), 1)[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, default=Path("runs/bench/speedup_vs_dft.json"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[3, 4], help="Supercell sizes N (N x N V_Se).")
    ap.add_argument("--profile", type=Path, default=ROOT / "training" / "dft" / "gpaw_pbe.yaml")
    ap.add_argument("--model", default=None, help="mace-torch model (default: untrained, see --channels).")
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--max-ell", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="Torch threads for MACE (GPAW runs on one core).")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--skip-gpaw", action="store_true", help="Time MACE only (e.g. to compare with label cpu_s)."
    )
    ap.add_argument(
        "--quick", action="store_true", help="3x3 only, reduced DFT settings (ratio = lower bound)."
    )
    ap.add_argument("--labels", type=Path, default=None, help="Label store with cpu_s per label (growth).")
    args = ap.parse_args()

    from mlff2d.config import load_yaml
    from mlff2d.runinfo import package_versions

    profile = QUICK_PROFILE if args.quick else load_yaml(args.profile)
    sizes = [3] if args.quick else args.sizes
    calc, arch = mace_calculator(args.model, args.channels, args.max_ell, args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            atoms = cell(n)
            t_mace, cpu_mace = time_mace(atoms, calc, args.repeats)
            row = {"size": f"{n}x{n}", "n_atoms": len(atoms), "t_mace_s": t_mace, "cpu_mace_s": cpu_mace}
            if not args.skip_gpaw:
                row.update(time_gpaw(atoms, profile, Path(tmp) / f"n{n}"))
                row["speedup"] = row["t_gpaw_s"] / t_mace
                row["speedup_cpu"] = row["cpu_gpaw_s"] / cpu_mace
            rows.append(row)
            print(json.dumps(row), flush=True)
    nat = [r["n_atoms"] for r in rows]
    headline = {"mace_exponent": power_law(nat, [r["t_mace_s"] for r in rows])}
    if not args.skip_gpaw:
        headline["gpaw_exponent"] = power_law(nat, [r["t_gpaw_s"] for r in rows])
        headline.update({f"speedup_{r['size']}_V_Se": r["speedup"] for r in rows})
        headline.update({f"speedup_cpu_{r['size']}_V_Se": r["speedup_cpu"] for r in rows})
    label_table = []
    if args.labels is not None:
        label_table = label_rows(args.labels, calc, args.repeats)
        # the exponents over the most common settings (the dataset's), other settings listed only
        counts: dict[str, int] = {}
        for r in label_table:
            counts[r["settings_hash"]] = counts.get(r["settings_hash"], 0) + r["n_labels"]
        main_hash = max(counts, key=counts.get)
        fit = [r for r in label_table if r["settings_hash"] == main_hash]
        nat = [r["n_atoms"] for r in fit]
        headline["labels_gpaw_cpu_exponent"] = power_law(nat, [r["cpu_gpaw_s_median"] for r in fit])
        headline["labels_mace_cpu_exponent"] = power_law(nat, [r["cpu_mace_s"] for r in fit])
        for r in label_table:
            tag = "" if r["settings_hash"] == main_hash else f"_{r['settings_hash']}"
            headline[f"labels_speedup_cpu_{r['n_atoms']}_atoms{tag}"] = r["speedup_cpu"]
    out = {
        "headline": headline,
        "rows": rows,
        "labels": {"store": str(args.labels), "rows": label_table} if args.labels else None,
        "mace": arch,
        "mace_threads": args.threads,
        "gpaw_threads": int(os.environ.get("OMP_NUM_THREADS", "1")),
        "quick": args.quick,
        "dft_settings": profile,
        "versions": package_versions(),
        "note": "GPAW: one SCF from scratch, energy + forces, 1 core; MACE: energy + forces, median; "
        "speedup_cpu uses process CPU time, which does not depend on how busy the machine is",
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=1, default=str))
    print(f"wrote {args.output}: {json.dumps(headline)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
