"""Force sets of a 12×12 V_Se WSe2 supercell: batched MACE vs serial ASE calls vs the Hessian.

Each route runs in its own process (peak memory = that process's max RSS) on the same
displaced supercells from Phonopy:

* ``serial``: ``MACECalculator`` through ASE, one displaced supercell per call;
* ``batched``: :class:`mlff2d.phonons.engines.MACEBatchEngine` as ``mlff2d phonons`` uses it
  (one neighbour graph reused, no stress, batch size tuned, and the exact local route: a
  one-atom displacement evaluated on the cluster within 2 x layers hops of the atom);
* ``whole-cell``: the same engine with the local route off (whole supercells per pass);
* ``hessian``: the analytic MACE Hessian of the undisplaced supercell (all force constants);
  ``--hessian-rows`` rows are timed and the time is scaled to all 3 n_atoms rows.

Every route is timed on the first ``--n-displacements`` supercells of Phonopy's list with a
fresh engine (cluster building and reference evaluations included), after a warm-up of the
model on two other supercells; times are extrapolated to the full set. Routes alternate over
``--repeats`` and the fastest repeat of each is kept.

Models have random weights (speed does not depend on them) and the architecture of

* ``quick``: ``training/wse2_sw_quick.yaml`` (1 layer, r_max 4 Å, max_ell 5, 16 scalar
  channels, correlation 2), the shipped model of the demo;
* ``deep``: 2 layers, r_max 5 Å, max_ell 2, 16 channels (0e + 1o), correlation 3: a receptive
  field of 10 Å, which a 12×12 cell (33 Å) cannot fit twice, so only whole cells are used.

``--model M.model`` times a trained model instead.

    python benchmarks/phonons.py --output runs/bench/phonons.json [--quick] [--arch quick deep]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import sys
import time
from pathlib import Path

ARCHS = {
    "quick": {
        "r_max": 4.0,
        "num_interactions": 1,
        "max_ell": 5,
        "channels": 16,
        "correlation": 2,
        "max_L": 0,
    },
    "deep": {"r_max": 5.0, "num_interactions": 2, "max_ell": 2, "channels": 16, "correlation": 3, "max_L": 1},
}


def _model(args, arch: str):
    if args.model:
        from mlff2d.phonons.engines import load_mace_calculator

        return load_mace_calculator(args.model, "cpu")
    from mace.calculators import MACECalculator

    from mlff2d.lammps.toymodel import random_mace

    return MACECalculator(models=random_mace(**ARCHS[arch]), device="cpu", default_dtype="float64")


def _cells(n: int):
    from mlff2d.phonons import core
    from mlff2d.structures import make_defect, monolayer, supercell

    cell = make_defect(supercell(monolayer("WSe2"), n, n), "V_Se")
    ph = core.make_phonopy(cell, (1, 1), symprec=1e-4)
    ph.generate_displacements(distance=0.01)
    return cell, [core.from_phonopy(c) for c in ph.supercells_with_displacements]


def _route(name: str, arch: str, args, queue) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from mlff2d.phonons.engines import ASEEngine, MACEBatchEngine, mace_hessian_rows
    from mlff2d.runtime import keep_allocator_memory

    keep_allocator_memory()
    calc = _model(args, arch)
    cell, cells = _cells(args.size)
    sample = cells[: args.n_displacements]
    warm = cells[-2:]
    res = {"route": name, "arch": arch, "n_atoms": len(cell), "n_displacements": len(cells)}

    def engine():
        if name == "serial":
            return ASEEngine(calc)
        return MACEBatchEngine(calc, local=name != "whole-cell")

    engine().compute(warm, reference=cell)  # warm-up (torch, allocator), then a fresh engine
    if name == "hessian":
        eng = MACEBatchEngine(calc, batch_size=1)
        n3 = 3 * len(cell)
        rows = n3 if args.hessian_rows <= 0 else min(args.hessian_rows, n3)
        t0 = time.perf_counter()
        mace_hessian_rows(eng, cell, rows=range(rows))
        res["hessian_rows_timed"] = rows
        res["total_s"] = (time.perf_counter() - t0) * n3 / rows
    else:
        eng = engine()
        t0 = time.perf_counter()
        eng.compute(sample, reference=cell)
        per = (time.perf_counter() - t0) / len(sample)
        res["per_displacement_s"] = per
        res["total_s"] = per * len(cells)
        if isinstance(eng, MACEBatchEngine):
            res["batch_size"] = eng.batch_size
            res["evaluated"] = dict(eng.stats)
            if eng._plan is not None and eng._plan.clusters:
                sizes = [c.n_nodes for c in eng._plan.clusters.values() if c is not None]
                res["cluster_nodes_mean"] = sum(sizes) / len(sizes)
    res["peak_rss_MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(res)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", type=Path, default=Path("runs/bench/phonons.json"))
    ap.add_argument("--quick", action="store_true", help="6×6 cell, fewer displacements, one repeat.")
    ap.add_argument("--model", default=None, help="A trained MACE *.model instead of the random ones.")
    ap.add_argument("--arch", nargs="+", default=["quick", "deep"], choices=sorted(ARCHS))
    ap.add_argument("--size", type=int, default=12, help="N of the N×N V_Se supercell.")
    ap.add_argument("--n-displacements", type=int, default=96)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads per route.")
    ap.add_argument("--no-hessian", action="store_true")
    ap.add_argument("--repeats", type=int, default=2, help="Alternating repeats (min is kept).")
    ap.add_argument(
        "--hessian-rows", type=int, default=96, help="Hessian rows timed (extrapolated); 0 = all."
    )
    args = ap.parse_args()
    if args.quick:
        args.size, args.n_displacements, args.repeats = 6, 24, 1
    archs = ["model"] if args.model else args.arch
    routes = ["serial", "batched", "whole-cell"] + ([] if args.no_hessian else ["hessian"])
    ctx = mp.get_context("spawn")
    results: dict[str, dict] = {}
    for _ in range(args.repeats):  # routes alternate; the fastest repeat of each is kept
        for arch in archs:
            for name in routes:
                key = f"{arch}/{name}"
                q = ctx.Queue()
                p = ctx.Process(target=_route, args=(name, arch, args, q))
                p.start()
                p.join()
                if p.exitcode != 0:
                    results.setdefault(key, {"route": name, "arch": arch, "failed": p.exitcode})
                    continue
                r = q.get()
                print(json.dumps(r), flush=True)
                old = results.get(key, {})
                r["repeats_total_s"] = [*old.get("repeats_total_s", []), round(r["total_s"], 3)]
                if "total_s" not in old or r["total_s"] < old["total_s"]:
                    results[key] = r
                else:
                    old["repeats_total_s"] = r["repeats_total_s"]
    headline: dict[str, float | int | str] = {}
    for arch in archs:
        serial = results[f"{arch}/serial"]
        pre = "" if arch in ("quick", "model") else f"{arch}_"
        headline[f"{pre}n_atoms"] = serial["n_atoms"]
        headline[f"{pre}n_displacements"] = serial["n_displacements"]
        headline[f"{pre}serial_s_per_displacement"] = round(serial["per_displacement_s"], 4)
        for name in routes[1:]:
            r = results.get(f"{arch}/{name}", {})
            if "total_s" in r:
                label = name.replace("-", "_")
                headline[f"{pre}{label}_speedup_vs_serial"] = round(serial["total_s"] / r["total_s"], 3)
        batched = results.get(f"{arch}/batched", {})
        headline[f"{pre}batched_route"] = (
            "local" if batched.get("evaluated", {}).get("local") else "whole-cell"
        )
    out = {
        "benchmark": "phonons",
        "headline": headline,
        "routes": results,
        "architectures": {a: ARCHS.get(a, args.model) for a in archs},
        "settings": vars(args) | {"output": str(args.output)},
        "machine": {"python": platform.python_version(), "cpu": platform.processor()},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=1))
    print(json.dumps(headline, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
