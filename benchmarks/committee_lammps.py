"""Cost of a committee of K MACE models in LAMMPS (pair_style mace, one graph) against one model.

NVE MD steps (``lammps_inputs/in.bench``) of a 12x12 V_Se WSe2 cell (431 atoms), one MPI rank,
one thread, three routes:

* one    - ``pair_coeff * * m0 W Se``: one model;
* mean   - ``pair_coeff * * m0 m1 m2 m3 W Se`` (``-var pair committee``): all K members on every
           step, mean forces; σ_F per atom dumped every ``--sigma-every`` steps, σ_E and max σ_F
           in thermo (the MD that ``lammps_inputs/in.wse2_committee`` runs);
* first  - the same with ``pair_style mace committee first``: the first member drives the MD,
           the others run only on the steps that sample σ_F and on thermo steps.

pair_style mace's own timing split (rank 0, per force evaluation): graph (neighbour list to
graph tensors, built once per step and shared by the members), model (the member evaluations,
forward + force backward: not shared, each member's weights are its own), results. Each route is
run ``--repeats`` times interleaved with the others and the fastest is kept (shared machine).
Writes JSON with a ``headline`` and a Markdown table.

    python benchmarks/committee_lammps.py --output runs/bench/committee_lammps.json [--quick]
    python benchmarks/committee_lammps.py --models m0.model-lammps.pt m1.model-lammps.pt ...
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lammps_plugin import cell, lammps_ms  # noqa: E402

#: random members of the architecture of training/wse2_gpaw.yaml (the shipped GPAW model)
GPAW_ARCHITECTURE = {
    "channels": 32,
    "max_L": 1,
    "max_ell": 3,
    "correlation": 3,
    "num_bessel": 8,
    "radial_mlp": (32, 32, 32),
    "mlp_irreps": "16x0e",
}


def random_members(k: int, folder: Path) -> list[Path]:
    """K random models of the GPAW architecture (seeds 10, 11, ...) exported for LAMMPS."""
    from mlff2d.lammps.toymodel import random_mace, save_lammps_model

    return [
        save_lammps_model(random_mace(seed=10 + i, **GPAW_ARCHITECTURE), folder / f"m{i}.model-lammps.pt")
        for i in range(k)
    ]


def route_variables(route: str, models: list[Path], sigma_every: int) -> tuple[Path | None, dict]:
    """``model`` and extra ``-var`` values of a route for ``in.bench``."""
    if route == "one":
        return models[0], {}
    extra = {
        "pair": "committee",
        "models": " ".join(str(m.resolve()) for m in models),
        "sigma_every": sigma_every,
    }
    if route == "first":
        extra["mace_opts"] = "committee first"
    return None, extra


def markdown(rows: dict[str, dict], k: int) -> str:
    lines = [
        "| route | ms / MD step | × one model | graph ms | model ms | results ms |",
        "|---|---|---|---|---|---|",
    ]
    one = rows["one"]["ms_per_step"]
    names = {
        "one": "one model",
        "mean": f"committee of {k}, mean forces",
        "first": f"committee of {k}, first",
    }
    for route, r in rows.items():
        lines.append(
            f"| {names[route]} | {r['ms_per_step']:.1f} | {r['ms_per_step'] / one:.2f} | "
            f"{r.get('graph_ms', float('nan')):.1f} | {r.get('model_ms', float('nan')):.1f} | "
            f"{r.get('results_ms', float('nan')):.1f} |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", type=Path, default=Path("runs/bench/committee_lammps.json"))
    ap.add_argument("--quick", action="store_true", help="10 steps, 1 repeat")
    ap.add_argument("--models", type=Path, nargs="+", default=None, help="member *.model-lammps.pt")
    ap.add_argument("-K", "--members", type=int, default=4, help="K of the random committee")
    ap.add_argument("--size", type=int, default=12, help="N of the N x N V_Se cell")
    ap.add_argument("--steps", type=int, default=20, help="timed NVE steps")
    ap.add_argument("--sigma-every", type=int, default=10, help="σ_F sampling interval (steps)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    if args.quick:
        args.steps, args.repeats = 10, 1
    work = args.output.parent / "committee_lammps_work"
    work.mkdir(parents=True, exist_ok=True)

    from mlff2d.lammps.plugin import build_plugin
    from mlff2d.lammps.run import write_data

    build_plugin()
    if args.models:
        models, desc = list(args.models), "given models"
    else:
        models = random_members(args.members, work)
        desc = (
            "random ScaleShiftMACE, training/wse2_gpaw.yaml architecture (32x0e+32x1o, max_ell 3, 2 layers)"
        )
    k = len(models)
    atoms = cell(args.size)
    data = work / f"cell{args.size}.data"
    write_data(atoms, data, ["W", "Se"])

    best: dict[str, dict] = {}
    for _ in range(args.repeats):
        for route in ("one", "mean", "first"):
            model, extra = route_variables(route, models, args.sigma_every)
            res = lammps_ms(work, data, "mace", model, args.steps, 1, extra=extra)
            if route not in best or res["ms_per_step"] < best[route]["ms_per_step"]:
                best[route] = res
            print(route, json.dumps(res), flush=True)
    if not (work / "sigma_f.lammpstrj").is_file():
        raise SystemExit("the committee runs wrote no sigma_f.lammpstrj")

    one, mean, first = (best[r]["ms_per_step"] for r in ("one", "mean", "first"))
    one_eval = sum(best["one"][f"{p}_ms"] for p in ("graph", "model", "results"))
    headline = {
        "md_step_ms_one_model": round(one, 1),
        f"committee_K{k}_mean_over_one_model": round(mean / one, 2),
        f"committee_K{k}_mean_over_{k}x_one_model": round(mean / (k * one), 3),
        f"committee_K{k}_first_sigma_every_{args.sigma_every}_over_one_model": round(first / one, 2),
        "graph_share_of_one_model_evaluation": round(best["one"]["graph_ms"] / one_eval, 6),
        "member_model_ms_in_committee_over_one_model": round(
            best["mean"]["model_ms"] / k / best["one"]["model_ms"], 3
        ),
    }
    out = {
        "benchmark": "committee_lammps",
        "headline": headline,
        "members": k,
        "models": desc,
        "atoms": len(atoms),
        "cell": f"{args.size}x{args.size} V_Se WSe2",
        "steps": args.steps,
        "sigma_every": args.sigma_every,
        "ranks": 1,
        "threads_per_rank": 1,
        "routes": {r: {key: round(v, 3) for key, v in res.items()} for r, res in best.items()},
        "markdown": markdown(best, k),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(headline, indent=1))
    print(out["markdown"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
