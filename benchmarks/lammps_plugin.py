"""Time per MD step of MACE through the LAMMPS plugin, side by side with its references.

For V_Se WSe2 cells of N x N primitive cells (12, 24, 48, 96 -> 431, 1727, 6911, 27647 atoms):

* plugin   - ``lmp -in lammps_inputs/in.bench`` with ``pair_style mace`` (1 and 2 MPI ranks);
             ``overhead_in_process`` = MD step time / the plugin's own model-call time,
* bare     - the same TorchScript model called directly (forward + force backward) on the same
             periodic graph, in this process: the plugin's overhead ratio is plugin / bare,
* ase      - ASE VelocityVerlet with mace-torch's ``MACECalculator`` (speed-up = ase / plugin),
* sw       - the SW teacher in LAMMPS (cost ratio = plugin / sw),
* no-keep  - the plugin with ``MLFF2D_KEEP_MEMORY=0`` (glibc returns freed tensor memory to the OS
             after every step): the per-atom cost then grows with size.

One thread per MPI rank. Each measurement is repeated ``--repeats`` times interleaved with the
others and the fastest is kept (the machine may be shared). Writes JSON with a ``headline``.

    python benchmarks/lammps_plugin.py --output runs/bench/lammps_plugin.json [--quick]
    python benchmarks/lammps_plugin.py --sizes 12 24 --model my.model-lammps.pt --mace-model my.model
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")


def cell(n: int):
    from mlff2d.structures import make_defect, monolayer, supercell

    return make_defect(supercell(monolayer("WSe2"), n, n), "V_Se")


def lammps_ms(
    workdir: Path,
    data: Path,
    pair: str,
    model: Path | None,
    steps: int,
    nprocs: int,
    keep: bool = True,
    extra: dict | None = None,
) -> dict:
    """ms per MD step of ``in.bench`` (and pair_style mace's split); ``extra``: more -var values."""
    from mlff2d.lammps.run import inputs_dir, run_lammps

    env = {"OMP_NUM_THREADS": "1", "MLFF2D_KEEP_MEMORY": "1" if keep else "0"}
    v = {
        "inputs": inputs_dir(),
        "pair": pair,
        "data": data.resolve(),
        "steps": steps,
        "equil": 1,
        "thermo": steps,
        "prefix": f"{workdir.resolve()}/",
    }
    if model:
        v["model"] = model.resolve()
    v |= extra or {}
    res = run_lammps(inputs_dir() / "in.bench", v, cwd=workdir, nprocs=nprocs, env=env, log=None)
    loop = res.loop_times()[-1]
    out = {"ms_per_step": 1e3 * loop["seconds"] / loop["steps"]}
    mt = res.mace_timings()
    if mt:
        last = mt[-1]
        n = max(last["evaluations"], 1)
        out |= {f"{k}_ms": 1e3 * last[k] / n for k in ("graph", "model", "results")}
    return out


def bare_ms(model_file: Path, atoms, steps: int) -> float:
    """TorchScript model forward + force backward on the periodic graph (no ghosts)."""
    import torch
    from mace import data as mdata
    from mace.tools import torch_geometric, utils

    from mlff2d.runtime import keep_allocator_memory

    keep_allocator_memory()
    torch.set_num_threads(1)
    model = torch.jit.load(str(model_file))
    dtype = next(model.parameters()).dtype
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        z = utils.AtomicNumberTable([int(x) for x in model.atomic_numbers])
        g = mdata.AtomicData.from_config(
            mdata.config_from_atoms(atoms), z_table=z, cutoff=float(model.r_max), heads=["Default"]
        )
        batch = next(iter(torch_geometric.dataloader.DataLoader([g], batch_size=1))).to_dict()
    finally:
        torch.set_default_dtype(old)
    keys = ["positions", "edge_index", "unit_shifts", "shifts", "cell", "node_attrs", "batch", "ptr"]
    mask = torch.ones(len(atoms), dtype=dtype)
    times = []
    for i in range(steps + 3):
        t0 = time.perf_counter()
        out = model({k: batch[k].clone() for k in keys}, mask, False)
        out["forces"].sum().item()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return 1e3 * float(np.mean(times))


def ase_ms(torch_model, atoms, steps: int) -> float:
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet
    from mace.calculators import MACECalculator

    from mlff2d.runtime import keep_allocator_memory

    keep_allocator_memory()
    a = atoms.copy()
    dtype = str(next(torch_model.parameters()).dtype).removeprefix("torch.")
    a.calc = MACECalculator(models=torch_model, device="cpu", default_dtype=dtype)
    MaxwellBoltzmannDistribution(a, temperature_K=300, rng=np.random.default_rng(1))
    dyn = VelocityVerlet(a, 1.0 * units.fs)
    dyn.run(2)
    t0 = time.perf_counter()
    dyn.run(steps)
    return 1e3 * (time.perf_counter() - t0) / steps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", type=Path, default=Path("runs/bench/lammps_plugin.json"))
    ap.add_argument("--quick", action="store_true", help="sizes 12 24, 5 steps")
    ap.add_argument(
        "--sizes", type=int, nargs="+", default=[12, 24, 48, 96], help="N of the N x N V_Se cells"
    )
    ap.add_argument("--steps", type=int, default=10, help="timed MD steps (fewer on big cells)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--ase-max-atoms", type=int, default=7000)
    ap.add_argument(
        "--keep-test-max-atoms",
        type=int,
        default=7000,
        help="largest cell for the MLFF2D_KEEP_MEMORY=0 comparison",
    )
    ap.add_argument("--model", type=Path, default=None, help="*.model-lammps.pt (default: toy)")
    ap.add_argument("--mace-model", type=Path, default=None, help="its mace-torch *.model (ASE)")
    ap.add_argument("--channels", type=int, default=16, help="toy model channels")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.steps, args.repeats = [12, 24], 5, 1
    work = args.output.parent / "lammps_plugin_work"
    work.mkdir(parents=True, exist_ok=True)

    import torch

    from mlff2d.lammps.plugin import build_plugin
    from mlff2d.lammps.run import write_data
    from mlff2d.lammps.toymodel import random_mace, save_lammps_model

    build_plugin()
    if args.model is None:
        torch_model = random_mace(channels=args.channels, seed=3)
        args.model = save_lammps_model(torch_model, work / "toy.model-lammps.pt")
        model_desc = f"random ScaleShiftMACE {args.channels}x0e+{args.channels}x1o, L=2, r_max 5, 2 layers"
    else:
        torch_model = torch.load(args.mace_model, weights_only=False) if args.mace_model else None
        model_desc = str(args.model)

    rows = []
    for n in args.sizes:
        atoms = cell(n)
        data = work / f"cell{n}.data"
        write_data(atoms, data, ["W", "Se"])
        nat = len(atoms)
        steps = max(2, args.steps if nat < 5000 else args.steps // 4)
        row: dict = {"n": n, "atoms": nat, "steps": steps}
        best: dict[str, float] = {}

        def keep_best(name: str, value: float, _best=best) -> None:
            _best[name] = min(_best.get(name, float("inf")), value)

        for _ in range(args.repeats):
            for r in args.ranks:
                res = lammps_ms(work, data, "mace", args.model, steps, r)
                keep_best(f"plugin_{r}rank_ms", res["ms_per_step"])
                if r == 1:
                    for k in ("graph_ms", "model_ms", "results_ms"):
                        if k in res:
                            keep_best(f"plugin_1rank_{k}", res[k])
                keep_best(f"sw_{r}rank_ms", lammps_ms(work, data, "sw", None, 20 * steps, r)["ms_per_step"])
            keep_best("bare_ms", bare_ms(args.model, atoms, steps))
            if nat <= args.keep_test_max_atoms:
                keep_best(
                    "plugin_1rank_nokeep_ms",
                    lammps_ms(work, data, "mace", args.model, steps, 1, keep=False)["ms_per_step"],
                )
            if torch_model is not None and nat <= args.ase_max_atoms:
                keep_best("ase_ms", ase_ms(torch_model, atoms, max(2, steps // 2)))
        row |= {k: round(v, 3) for k, v in best.items()}
        p1 = best["plugin_1rank_ms"]
        row["overhead_vs_bare"] = round(p1 / best["bare_ms"], 3)
        if "plugin_1rank_model_ms" in best:
            # same process, no noise from comparing two processes: MD step / model call
            row["overhead_in_process"] = round(p1 / best["plugin_1rank_model_ms"], 3)
        row["plugin_1rank_us_per_atom"] = round(1e3 * p1 / nat, 2)
        if "plugin_1rank_nokeep_ms" in best:
            row["nokeep_us_per_atom"] = round(1e3 * best["plugin_1rank_nokeep_ms"] / nat, 2)
        if "ase_ms" in best:
            row["speedup_vs_ase"] = round(best["ase_ms"] / p1, 2)
        row["cost_vs_sw"] = round(p1 / best["sw_1rank_ms"], 1)
        if 2 in args.ranks:
            row["mpi2_speedup"] = round(p1 / best["plugin_2rank_ms"], 2)
        rows.append(row)
        print(json.dumps(row), flush=True)

    per_atom = [r["plugin_1rank_us_per_atom"] for r in rows]
    ref = next((r for r in rows if r["n"] == 24), rows[-1])
    headline = {
        "plugin_overhead_vs_bare_max": max(r["overhead_vs_bare"] for r in rows),
        f"plugin_overhead_vs_bare_{ref['atoms']}": ref["overhead_vs_bare"],
        "plugin_overhead_in_process_max": max(r.get("overhead_in_process", 0.0) for r in rows),
        "cost_per_atom_max_over_min": round(max(per_atom) / min(per_atom), 3),
        f"cost_vs_sw_{ref['atoms']}": ref["cost_vs_sw"],
    }
    if "speedup_vs_ase" in ref:
        headline[f"speedup_vs_ase_md_{ref['atoms']}"] = ref["speedup_vs_ase"]
    nk = [r["nokeep_us_per_atom"] for r in rows if "nokeep_us_per_atom" in r]
    if len(nk) > 1:
        headline["cost_per_atom_max_over_min_without_keep_memory"] = round(max(nk) / min(nk), 3)
    result = {
        "benchmark": "lammps_plugin",
        "model": model_desc,
        "threads_per_rank": 1,
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
        },
        "rows": rows,
        "headline": headline,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1))
    print(json.dumps(headline, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
