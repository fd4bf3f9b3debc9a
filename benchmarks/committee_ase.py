"""Cost of a committee of K MACE models in ASE against one model, on a 12x12 V_Se WSe2 cell.

Times, per energy + forces + stress call on the same cell (431 atoms, positions changed every
call so nothing is cached):

* one        - mace-torch ``MACECalculator`` with one model,
* committee  - :class:`mlff2d.training.committee.CommitteeCalculator` with 2, ..., K models: the
               graph (neighbour list, batch) is built once and every member runs on it
               (``extra_member_over_one_model``: the cost of each member after the first,
               relative to one model),
* separate   - K separate one-model calculators, one after the other,
* graph      - building the graph alone (the part a committee shares).

Models: ``--models A.model B.model ...`` or ``--committee FOLDER`` (from ``mlff2d train
--committee K``); else K random ScaleShiftMACE models of the architecture of
``training/wse2_gpaw.yaml`` (the cost does not depend on the weights). One torch thread by
default; each timing is the fastest of ``--repeats`` (the machine may be shared). Writes JSON
with a ``headline``.

    python benchmarks/committee_ase.py --output runs/bench/committee_ase.json [--quick]
    python benchmarks/committee_ase.py --committee runs/committee --size 12
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")


def cell(n: int):
    from mlff2d.structures import make_defect, monolayer, supercell

    return make_defect(supercell(monolayer("WSe2"), n, n), "V_Se")


def random_members(k: int, folder: Path) -> list[Path]:
    """K random models of the GPAW config's architecture, saved as mace-torch model files."""
    import torch

    from mlff2d.lammps.toymodel import random_mace

    paths = []
    for i in range(k):
        model = random_mace(channels=32, max_ell=3, correlation=3, max_L=1, mlp_irreps="16x0e", seed=10 + i)
        paths.append(folder / f"member_{i}.model")
        torch.save(model, paths[-1])
    return paths


def fastest_ms(routes: dict[str, list], atoms, repeats: int, rng: np.random.Generator) -> dict[str, float]:
    """Fastest wall time (ms) of energy + forces + stress of each route (a list of calculators).

    The routes take turns within every repeat (so a load change on a shared machine hits all of
    them alike); the first round warms up.
    """
    best = dict.fromkeys(routes, np.inf)
    for i in range(repeats + 1):
        a = atoms.copy()
        a.positions += rng.normal(scale=0.01, size=a.positions.shape)
        for name, calcs in routes.items():
            t0 = time.perf_counter()
            for c in calcs:
                c.calculate(a, ["energy", "forces", "stress"], ["positions"])
            if i > 0:
                best[name] = min(best[name], time.perf_counter() - t0)
    return {f"{name}_ms": 1e3 * t for name, t in best.items()}


def graph_ms(calc, atoms, repeats: int) -> float:
    """Fastest time (ms) of mace-torch building the batched graph of ``atoms``."""
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        calc._atoms_to_batch(atoms)
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times[1:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", type=Path, default=Path("runs/bench/committee_ase.json"))
    ap.add_argument("--quick", action="store_true", help="2 repeats")
    ap.add_argument("--models", type=Path, nargs="+", default=None, help="member *.model files")
    ap.add_argument(
        "--committee", type=Path, default=None, help="committee folder (mlff2d train --committee)"
    )
    ap.add_argument("-K", "--members", type=int, default=4, help="K for the random models")
    ap.add_argument("--size", type=int, default=12, help="N of the N x N V_Se cell")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.quick:
        args.repeats = 2

    import torch

    from mlff2d.training import calculator
    from mlff2d.training.committee import CommitteeCalculator, committee_models

    torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory()
    if args.committee is not None:
        paths, desc = committee_models(args.committee), f"committee {args.committee}"
    elif args.models:
        paths, desc = list(args.models), "given models"
    else:
        paths = random_members(args.members, Path(tmp.name))
        desc = (
            "random ScaleShiftMACE, training/wse2_gpaw.yaml architecture (32x0e+32x1o, max_ell 3, 2 layers)"
        )
    atoms = cell(args.size)
    rng = np.random.default_rng(0)
    singles = [calculator(p, device=args.device) for p in paths]
    k = len(paths)
    routes = {"one": singles[:1], "separate": singles}
    for n in range(2, k + 1):
        routes[f"committee_K{n}"] = [CommitteeCalculator(paths[:n], device=args.device)]
    res = {
        **fastest_ms(routes, atoms, args.repeats, rng),
        "graph_ms": graph_ms(singles[0], atoms, args.repeats),
    }
    one, full = res["one_ms"], res[f"committee_K{k}_ms"]
    headline = {
        f"committee_K{k}_over_one_model": round(full / one, 2),
        f"committee_K{k}_over_{k}_separate_calls": round(full / res["separate_ms"], 3),
        "extra_member_over_one_model": round((full - one) / ((k - 1) * one), 3),
        "graph_share_of_one_call": round(res["graph_ms"] / one, 3),
    }
    out = {
        "headline": headline,
        "members": k,
        "models": desc,
        "atoms": len(atoms),
        "cell": f"{args.size}x{args.size} V_Se WSe2",
        "device": args.device,
        "torch_threads": args.threads,
        "repeats": args.repeats,
        "timings_ms": {key: round(v, 2) for key, v in res.items()},
        "machine": platform.processor() or platform.machine(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
