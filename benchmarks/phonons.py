"""Force sets of a 12×12 V_Se WSe2 supercell: batched MACE vs serial ASE calls vs the Hessian.

Each route runs in its own process (peak memory = that process's max RSS) on the same
displaced supercells from Phonopy:

* ``serial``: ``MACECalculator`` through ASE, one displaced supercell per call;
* ``batched``: :class:`mlff2d.phonons.engine.MACEBatchEngine` (one neighbour graph reused,
  no stress, batch size tuned automatically; fixed sizes with ``--batch-sizes``);
* ``hessian``: the analytic MACE Hessian of the undisplaced supercell (all force constants);
  ``--hessian-rows`` rows are timed and the time is scaled to all 3 n_atoms rows.

Times per displacement are measured on the first ``--n-displacements`` supercells and
extrapolated to the full set. Without ``--model`` a random MACE of typical size is used.

    python benchmarks/phonons.py --output runs/bench/phonons.json [--quick] [--model M.model]
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


def _model(args):
    if args.model:
        from mlff2d.phonons.engine import load_mace_calculator

        return load_mace_calculator(args.model, "cpu")
    from mace.calculators import MACECalculator

    from mlff2d.lammps.toymodel import random_mace

    model = random_mace(channels=args.channels, max_ell=2, correlation=3, r_max=5.0)
    return MACECalculator(models=model, device="cpu", default_dtype="float64")


def _cells(n: int):
    from mlff2d.phonons import core
    from mlff2d.structures import make_defect, monolayer, supercell

    cell = make_defect(supercell(monolayer("WSe2"), n, n), "V_Se")
    ph = core.make_phonopy(cell, (1, 1), symprec=1e-4)
    ph.generate_displacements(distance=0.01)
    return cell, [core.from_phonopy(c) for c in ph.supercells_with_displacements]


def _route(name: str, args, queue) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from mlff2d.phonons.engine import ASEEngine, MACEBatchEngine, mace_hessian_rows
    from mlff2d.runtime import keep_allocator_memory

    keep_allocator_memory()
    calc = _model(args)
    cell, cells = _cells(args.size)
    sample = cells[: args.n_displacements]
    res = {"route": name, "n_atoms": len(cell), "n_displacements": len(cells)}
    if name == "hessian":
        engine = MACEBatchEngine(calc, batch_size=1)
        engine.compute(sample[:1])  # warm-up, as for the other routes
        n3 = 3 * len(cell)
        rows = n3 if args.hessian_rows <= 0 else min(args.hessian_rows, n3)
        t0 = time.perf_counter()
        mace_hessian_rows(engine, cell, rows=range(rows))
        res["hessian_rows_timed"] = rows
        res["total_s"] = (time.perf_counter() - t0) * n3 / rows
    else:
        if name == "serial":
            engine = ASEEngine(calc)
        else:
            bs = None if name == "batched" else int(name.split("-")[1])
            engine = MACEBatchEngine(calc, batch_size=bs)
            if bs is None:  # let the engine tune itself on the sample, then time it tuned
                engine.compute(sample)
                res["batch_size"] = engine.batch_size
        engine.compute(sample)  # warm-up pass over the same sample: every route starts warm
        t0 = time.perf_counter()
        engine.compute(sample)
        per = (time.perf_counter() - t0) / len(sample)
        res["per_displacement_s"] = per
        res["total_s"] = per * len(cells)
    res["peak_rss_MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(res)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", type=Path, default=Path("runs/bench/phonons.json"))
    ap.add_argument("--quick", action="store_true", help="6×6 cell, fewer displacements.")
    ap.add_argument("--model", default=None, help="MACE *.model (default: random model).")
    ap.add_argument("--channels", type=int, default=16, help="Channels of the random model.")
    ap.add_argument("--size", type=int, default=12, help="N of the N×N V_Se supercell.")
    ap.add_argument("--n-displacements", type=int, default=24)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads per route.")
    ap.add_argument("--batch-sizes", type=int, nargs="*", default=[4, 16])
    ap.add_argument("--no-hessian", action="store_true")
    ap.add_argument("--repeats", type=int, default=2, help="Alternating repeats (min is kept).")
    ap.add_argument(
        "--hessian-rows", type=int, default=96, help="Hessian rows timed (extrapolated); 0 = all."
    )
    args = ap.parse_args()
    if args.quick:
        args.size, args.n_displacements, args.batch_sizes, args.repeats = 6, 8, [4], 1
    routes = ["serial", "batched", *[f"batched-{b}" for b in args.batch_sizes]]
    if not args.no_hessian:
        routes.append("hessian")
    ctx = mp.get_context("spawn")
    results: dict[str, dict] = {}
    for _ in range(args.repeats):  # routes alternate; the fastest repeat of each is kept
        for name in routes:
            q = ctx.Queue()
            p = ctx.Process(target=_route, args=(name, args, q))
            p.start()
            p.join()
            if p.exitcode != 0:
                results.setdefault(name, {"route": name, "failed": p.exitcode})
                continue
            r = q.get()
            print(json.dumps(r), flush=True)
            old = results.get(name, {})
            r["repeats_total_s"] = [*old.get("repeats_total_s", []), round(r["total_s"], 3)]
            if "total_s" not in old or r["total_s"] < old["total_s"]:
                results[name] = r
            else:
                old["repeats_total_s"] = r["repeats_total_s"]
    serial = results["serial"]["total_s"]
    headline = {
        "n_atoms": results["serial"]["n_atoms"],
        "n_displacements": results["serial"]["n_displacements"],
        "serial_s_per_displacement": round(results["serial"]["per_displacement_s"], 4),
        "batched_speedup_vs_serial": round(serial / results["batched"]["total_s"], 3),
        "batched_batch_size": results["batched"].get("batch_size"),
    }
    for b in args.batch_sizes:
        r = results.get(f"batched-{b}", {})
        if "total_s" in r:
            headline[f"batched{b}_speedup_vs_serial"] = round(serial / r["total_s"], 3)
    if "total_s" in results.get("hessian", {}):
        headline["hessian_speedup_vs_serial"] = round(serial / results["hessian"]["total_s"], 3)
    out = {
        "benchmark": "phonons",
        "headline": headline,
        "routes": results,
        "settings": vars(args) | {"output": str(args.output)},
        "machine": {"python": platform.python_version(), "cpu": platform.processor()},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=1))
    print(json.dumps(headline, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
