"""MACE evaluation engines side by side: mace-torch (ASE), our LAMMPS plugin, Symmetrix-XL (ASE).

For V_Se WSe2 cells of N x N primitive cells (12, 24, 48, 96 -> 431, 1,727, 6,911, 27,647 atoms),
per architecture, precision and thread count, each engine runs in its own process (so its peak
RSS is its own) and reports

* ``call``: one energy + forces evaluation (ASE ``get_potential_energy`` + ``get_forces`` after a
  small displacement; for the plugin its own graph + model + results time per evaluation),
* ``step``: one velocity-Verlet MD step (ASE ``VelocityVerlet``; ``lmp`` with ``in.bench``),
* ``peak RSS``: the process's maximum resident memory, in total and per atom.

Engines: ``mace-torch`` (``MACECalculator``, glibc memory kept as the plugin does),
``plugin`` (``pair_style mace`` in ``lmp``; ``--threads 2`` means 2 MPI ranks of 1 thread, the
peak RSS is the largest rank's), ``symmetrix`` (symmetrix-xl's ``Symmetrix`` calculator,
``speed`` profile, kernels prepared once per architecture and precision: the one-off
conversion and compile times are reported as ``prepare``), ``plugin-symmetrix``
(``pair_style mace symmetrix yes``: the plugin on Symmetrix-XL's kernels; ``--threads 2``
means 2 MPI ranks, each evaluating its local atoms with their halo layer by layer).

Architectures, random weights (speed does not depend on them), read from the training configs:
``gpaw`` = ``training/wse2_gpaw.yaml`` (2 layers, 32 channels, L = 1, max_ell 3, correlation 3,
r_max 5 Å) and ``quick`` = ``training/wse2_sw_quick.yaml`` (1 layer, scalar messages; Symmetrix-XL
refuses it, the message is recorded). A size is skipped for an engine when its peak RSS,
extrapolated linearly from the previous size, would not fit in the available memory.

    python benchmarks/engines.py --output runs/bench/engines.json [--quick]
    python benchmarks/engines.py --sizes 12 24 --dtypes float64 --threads 1 --archs gpaw quick
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
ENGINES = ("mace-torch", "plugin", "symmetrix", "plugin-symmetrix")
#: pair_style mace keywords of the LAMMPS engines
PAIR_OPTS = {"plugin": "symmetrix no", "plugin-symmetrix": "symmetrix yes"}
CONFIGS = {"gpaw": ROOT / "training/wse2_gpaw.yaml", "quick": ROOT / "training/wse2_sw_quick.yaml"}


def arch_from_config(path: Path) -> dict:
    """``random_mace`` keyword arguments for the architecture of a mace-torch training config."""
    import yaml

    cfg = yaml.safe_load(path.read_text())
    mlp = cfg.get("radial_MLP")
    return {
        "r_max": float(cfg["r_max"]),
        "num_interactions": int(cfg["num_interactions"]),
        "channels": int(cfg["num_channels"]),
        "max_L": int(cfg["max_L"]),
        "max_ell": int(cfg["max_ell"]),
        "correlation": int(cfg["correlation"]),
        "num_bessel": int(cfg.get("num_radial_basis", 8)),
        "mlp_irreps": str(cfg.get("MLP_irreps", "16x0e")),
        "radial_mlp": tuple(ast.literal_eval(mlp)) if isinstance(mlp, str) else mlp,
    }


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident set size (MB) of this process (``VmHWM``) or of its largest finished child.

    ``VmHWM`` starts afresh at ``exec``; ``ru_maxrss`` does not (it would include the driver's
    memory at the fork), so it is only used for children, which fork from this small worker.
    """
    if children:
        return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return _status_mb("VmHWM")


def rss_mb() -> float:
    """Current resident set size (MB) of this process."""
    return _status_mb("VmRSS")


def available_mb() -> float:
    """``MemAvailable`` of /proc/meminfo (MB)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


# --------------------------------------------------------------------------- workers (subprocess)


def _ase_calculator(spec: dict):
    if spec["engine"] == "symmetrix":
        from mlff2d.training.symmetrix import symmetrix_calculator

        return symmetrix_calculator(spec["model"], spec["dtype"])
    import torch
    from mace.calculators import MACECalculator

    from mlff2d.runtime import keep_allocator_memory

    keep_allocator_memory()
    torch.set_num_threads(spec["threads"])
    model = torch.load(spec["model"], weights_only=False)
    return MACECalculator(models=model, device="cpu", default_dtype=spec["dtype"])


def ase_worker(spec: dict) -> dict:
    """Time calls and MD steps of an ASE calculator on the N x N V_Se cell."""
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet
    from lammps_plugin import cell

    atoms = cell(spec["n"])
    atoms.calc = _ase_calculator(spec)
    base = rss_mb()  # interpreter, libraries and the model, before any evaluation
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    atoms.get_forces()
    first = time.perf_counter() - t0
    calls = []
    for _ in range(spec["calls"]):
        atoms.positions += rng.normal(0.0, 1e-3, atoms.positions.shape)
        t0 = time.perf_counter()
        atoms.get_potential_energy()
        atoms.get_forces()
        calls.append(time.perf_counter() - t0)
    out = {"first_call_s": first, "call_s": min(calls)}
    if spec["steps"]:
        MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=rng)
        dyn = VelocityVerlet(atoms, 1.0 * units.fs)
        dyn.run(1)
        t0 = time.perf_counter()
        dyn.run(spec["steps"])
        out["step_s"] = (time.perf_counter() - t0) / spec["steps"]
    return out | {"peak_rss_mb": peak_rss_mb(), "base_rss_mb": base}


def plugin_worker(spec: dict) -> dict:
    """Time MD steps of ``pair_style mace`` in ``lmp`` (``in.bench``) on the N x N V_Se cell."""
    from lammps_plugin import cell, lammps_ms

    from mlff2d.lammps.run import write_data

    work = Path(spec["work"])
    data = work / f"cell{spec['n']}.data"
    write_data(cell(spec["n"]), data, ["W", "Se"])
    steps, opts = max(spec["steps"], 1), {"mace_opts": spec["mace_opts"]}
    res = lammps_ms(work, data, "mace", Path(spec["model"]), steps, spec["threads"], extra=opts)
    out = {"step_s": res["ms_per_step"] / 1e3}
    if "model_ms" in res:
        out["call_s"] = (res["graph_ms"] + res["model_ms"] + res["results_ms"]) / 1e3
    return out | {"peak_rss_mb": peak_rss_mb(children=True)}


def prepare_worker(spec: dict) -> dict:
    """Convert a model for Symmetrix-XL and compile its kernels from cold; the times, or why not."""
    from mlff2d.errors import ModelError
    from mlff2d.training.symmetrix import Bundle, prepare_bundle

    bundle = Bundle.of(spec["model"])
    shutil.rmtree(bundle.folder, ignore_errors=True)
    try:
        prepare_bundle(spec["model"], (spec["dtype"],), "speed")
    except ModelError as exc:
        return {"refused": exc.message.split(": ", 1)[-1]}  # Symmetrix-XL's own message
    card = bundle.card()
    return {"convert_s": card["convert_s"], "compile_s": card["prepared"][spec["dtype"]]["compile_s"]}


def worker_main(spec: dict) -> int:
    """Run one measurement in this process and print it as one ``RESULT`` JSON line."""
    kind = spec["kind"]
    out = {"prepare": prepare_worker, "plugin": plugin_worker, "ase": ase_worker}[kind](spec)
    print("RESULT " + json.dumps(out), flush=True)
    return 0


# --------------------------------------------------------------------------- driver


def run_worker(spec: dict, threads: int, timeout: float) -> dict:
    """Run ``spec`` in a fresh process with ``threads`` OpenMP threads; its result or the failure."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_PROC_BIND="false")
    cmd = [sys.executable, __file__, "--worker", json.dumps(spec)]
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"ran past {timeout:.0f} s"}
    meta = {
        "wall_s": round(time.perf_counter() - t0, 1),
        "load": [round(load0, 2), round(os.getloadavg()[0], 2)],
    }
    for line in res.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:]) | meta
    tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
    return {"error": f"exit {res.returncode}: {' | '.join(tail)}"} | meta


def build_models(arch: str, dtype: str, work: Path) -> dict[str, Path]:
    """The random-weight model of ``arch`` as a mace-torch file and a LAMMPS TorchScript file."""
    import torch

    from mlff2d.lammps.toymodel import random_mace, save_lammps_model

    mdl = work / f"{arch}_{dtype}.model"
    lmp = work / f"{arch}_{dtype}.model-lammps.pt"
    if not (mdl.is_file() and lmp.is_file()):
        model = random_mace(dtype=dtype, seed=3, **arch_from_config(CONFIGS[arch]))
        torch.save(model, mdl)
        save_lammps_model(model, lmp)
    return {"mace-torch": mdl, "symmetrix": mdl, "plugin": lmp, "plugin-symmetrix": lmp}


def _fits(prev: dict | None, n_atoms: int, margin: float) -> str | None:
    """Why a size is skipped: its extrapolated peak RSS exceeds ``margin`` x the available memory."""
    if not prev or "peak_rss_mb" not in prev:
        return None
    need = prev["peak_rss_mb"] * n_atoms / prev["atoms"]
    have = available_mb() * margin
    return None if need <= have else f"needs ~{need / 1024:.1f} GB, allowed {have / 1024:.1f} GB"


def measure(args, arch: str, dtype: str, threads: int, models: dict, prep: dict, rows: list[dict]) -> None:
    """Every engine at every size for one architecture, precision and thread count, into ``rows``.

    The results so far are written after every measurement (a killed run keeps them).
    """
    from lammps_plugin import cell

    prev: dict[str, dict] = {}
    for n in args.sizes:
        n_atoms = len(cell(n))
        for engine in args.engines:
            row = {
                "arch": arch,
                "dtype": dtype,
                "threads": threads,
                "n": n,
                "atoms": n_atoms,
                "engine": engine,
            }
            skip = _fits(prev.get(engine), n_atoms, args.memory_fraction)
            if "symmetrix" in engine and "refused" in prep:
                skip = "refused (see the preparation table)"
            if "symmetrix" in engine and "error" in prep:
                skip = f"not prepared: {prep['error']}"
            if skip:
                rows.append(row | {"skipped": skip})
                continue
            steps = args.steps if n_atoms < 5000 else max(1, args.steps // 2)
            spec = {
                "kind": "plugin" if engine in PAIR_OPTS else "ase",
                "engine": engine,
                "model": str(models[engine]),
                "work": str(args.work),
                "n": n,
                "dtype": dtype,
                "threads": threads,
                "calls": args.calls,
                "steps": steps if (engine in PAIR_OPTS or n_atoms <= args.ase_md_max_atoms) else 0,
                "mace_opts": PAIR_OPTS.get(engine, ""),
            }
            if engine == "plugin-symmetrix" and args.pair_memory is not None:
                spec["mace_opts"] += f" memory {args.pair_memory:g}"
                row["pair_memory_mb"] = args.pair_memory
            res = run_worker(spec, 1 if engine in PAIR_OPTS else threads, args.timeout)
            row |= _per_atom(res, n_atoms)
            rows.append(row)
            write_result(args.output, rows, args.prepare)
            if "error" not in res:
                prev[engine] = row
            print(json.dumps(row), flush=True)


def _per_atom(res: dict, n_atoms: int) -> dict:
    out = dict(res)
    for key in ("call_s", "step_s"):
        if key in res:
            out[f"{key[:-2]}_us_per_atom"] = round(1e6 * res[key] / n_atoms, 2)
    if "peak_rss_mb" in res:
        out["peak_kb_per_atom"] = round(1024 * res["peak_rss_mb"] / n_atoms, 1)
    if "base_rss_mb" in res:
        out["above_base_kb_per_atom"] = round(1024 * (res["peak_rss_mb"] - res["base_rss_mb"]) / n_atoms, 1)
    return out


def markdown(rows: list[dict], prepare: dict) -> str:
    """The rows as a Markdown table (µs/atom, peak RSS), with speed-ups over mace-torch."""
    ref = {
        (r["arch"], r["dtype"], r["threads"], r["n"]): r
        for r in rows
        if r["engine"] == "mace-torch" and "call_s" in r
    }
    lines = [
        "| arch | dtype | threads | atoms | engine | call µs/atom | MD step µs/atom | peak RSS MB "
        "| peak KB/atom | above start KB/atom | call speed-up vs mace-torch |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "skipped" in r or "error" in r:
            why = r.get("skipped") or r.get("error")
            lines.append(
                f"| {r['arch']} | {r['dtype']} | {r['threads']} | {r['atoms']} | {r['engine']} | {why} ||||||"
            )
            continue
        base = ref.get((r["arch"], r["dtype"], r["threads"], r["n"]))
        speed = f"{base['call_s'] / r['call_s']:.1f}x" if base and "call_s" in r else ""
        lines.append(
            f"| {r['arch']} | {r['dtype']} | {r['threads']} | {r['atoms']} | {r['engine']} "
            f"| {r.get('call_us_per_atom', '')} | {r.get('step_us_per_atom', '')} "
            f"| {r['peak_rss_mb']:.0f} | {r['peak_kb_per_atom']} | {r.get('above_base_kb_per_atom', '')} "
            f"| {speed} |"
        )
    lines += [
        "",
        "| Symmetrix-XL preparation | dtype | convert s | compile s | note |",
        "|---|---|---:|---:|---|",
    ]
    for (arch, dtype), p in prepare.items():
        note = p.get("refused") or p.get("error") or ""
        lines.append(f"| {arch} | {dtype} | {p.get('convert_s', '')} | {p.get('compile_s', '')} | {note} |")
    return "\n".join(lines)


def headline(rows: list[dict], prepare: dict) -> dict:
    """Per-atom costs and ratios at each size (gpaw, float64, 1 thread) for run_all's table."""
    out: dict = {}
    pick = {
        (r["engine"], r["atoms"]): r
        for r in rows
        if r["arch"] == "gpaw" and r["dtype"] == "float64" and r["threads"] == 1 and "call_s" in r
    }
    for (engine, n_atoms), r in sorted(pick.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        out[f"{engine}_call_us_per_atom_{n_atoms}"] = r["call_us_per_atom"]
        out[f"{engine}_peak_kb_per_atom_{n_atoms}"] = r["peak_kb_per_atom"]
        if "step_us_per_atom" in r:
            out[f"{engine}_step_us_per_atom_{n_atoms}"] = r["step_us_per_atom"]
        base = pick.get(("mace-torch", n_atoms))
        if engine != "mace-torch" and base:
            out[f"{engine}_call_speedup_vs_mace_torch_{n_atoms}"] = round(base["call_s"] / r["call_s"], 2)
    for (arch, dtype), p in prepare.items():
        if "compile_s" in p:
            out[f"symmetrix_prepare_s_{arch}_{dtype}"] = round(p["convert_s"] + p["compile_s"], 1)
    return out


def write_result(output: Path, rows: list[dict], prepare: dict) -> str:
    """Write the JSON (rows, preparation, headline, machine and load) and the Markdown table."""
    table = markdown(rows, prepare)
    result = {
        "benchmark": "engines",
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_end": os.getloadavg(),
            "mem_available_gb_end": round(available_mb() / 1024, 1),
        },
        "rows": rows,
        "prepare": [{"arch": a, "dtype": d, **p} for (a, d), p in prepare.items()],
        "markdown": table,
        "headline": headline(rows, prepare),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=1))
    output.with_suffix(".md").write_text(table + "\n")
    return table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", type=Path, default=Path("runs/bench/engines.json"))
    ap.add_argument("--quick", action="store_true", help="sizes 12 24, float64, 1 thread, 2 calls/steps")
    ap.add_argument(
        "--sizes", type=int, nargs="+", default=[12, 24, 48, 96], help="N of the N x N V_Se cells"
    )
    ap.add_argument("--dtypes", nargs="+", default=["float64", "float32"], choices=["float64", "float32"])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="threads (plugin: MPI ranks)")
    ap.add_argument("--archs", nargs="+", default=["gpaw", "quick"], choices=sorted(CONFIGS))
    ap.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    ap.add_argument("--calls", type=int, default=3, help="timed calls (the fastest is kept)")
    ap.add_argument("--steps", type=int, default=5, help="timed MD steps (half on cells > 5,000 atoms)")
    ap.add_argument("--ase-md-max-atoms", type=int, default=7000, help="largest cell for ASE MD steps")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per measurement")
    ap.add_argument(
        "--memory-fraction",
        type=float,
        default=0.6,
        help="skip a size whose extrapolated peak RSS exceeds this fraction of the available memory",
    )
    ap.add_argument(
        "--pair-memory", type=float, help="plugin-symmetrix: pair_style mace memory budget (MB per rank)"
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker_main(json.loads(args.worker))
    if args.quick:
        args.sizes, args.dtypes, args.threads, args.calls, args.steps = [12, 24], ["float64"], [1], 2, 2
    args.work = args.output.parent / "engines_work"
    args.work.mkdir(parents=True, exist_ok=True)
    from mlff2d.lammps.plugin import build_plugin

    if set(PAIR_OPTS) & set(args.engines):
        build_plugin()
    rows: list[dict] = []
    prepare = args.prepare = {}
    for arch in args.archs:
        for dtype in args.dtypes:
            models = build_models(arch, dtype, args.work)
            if {"symmetrix", "plugin-symmetrix"} & set(args.engines):
                spec = {"kind": "prepare", "model": str(models["symmetrix"]), "dtype": dtype}
                prepare[(arch, dtype)] = run_worker(spec, 1, args.timeout)
                print(json.dumps({"prepare": [arch, dtype], **prepare[(arch, dtype)]}), flush=True)
            for threads in args.threads:
                measure(args, arch, dtype, threads, models, prepare.get((arch, dtype), {}), rows)
    print(write_result(args.output, rows, prepare))
    return 0


if __name__ == "__main__":
    sys.exit(main())
