"""float32 against float64 MACE in LAMMPS MD: force errors, NVE energy drift and speed, side by side.

The same trained model is exported twice (``mlff2d export --dtype float64`` and ``--dtype
float32``) and run through ``pair_style mace`` (the plugin) on the N x N V_Se WSe2 cell
(12 x 12: 431 atoms):

1. **Force error** (``run 0``): energy, forces and virial of float32 minus float64 on the ideal
   cell, the cell rattled by 0.05 Å and the last frame of the float64 NVE run at the highest
   temperature; also mace-torch's ``MACECalculator`` with ``default_dtype`` float32 vs float64
   (``--no-ase`` skips it).
2. **NVE drift**: for each temperature and time step, ``lammps_inputs/in.wse2_defect`` equilibrates
   with the float64 model (Langevin, ``--equil`` steps) and runs NVE; the float32 model runs NVE from
   the same restart file (same positions and velocities). Drift = slope of a linear fit of the total
   energy (meV/atom/ps), fluctuation = standard deviation about that fit (meV/atom), and the time per
   MD step float32 / float64 (LAMMPS loop time and the plugin's own model-call time).
3. **The stages that stay float64** (ASE, ``mlff2d.training.calculator.calculator(dtype=...)``):
   relaxation of the unit cell (fmax 1e-4 eV/Å with the in-plane cell) and of the V_Se cell
   (2e-3 eV/Å), and harmonic phonon bands (Γ-M-K-Γ, 0.01 Å displacements) of a 6 x 6 supercell,
   float32 against float64.

The model: ``--model`` (a mace-torch ``*.model``), else the run in ``$MLFF2D_QUICK_MODEL_RUN``, else
the demo's ``runs/demo/model`` (``make demo``); with none of them the benchmark writes a JSON that
says so and exits 0. One thread (``OMP_NUM_THREADS=1``), one process at a time.

    python benchmarks/float32_md.py --output runs/bench/float32_md.json [--quick]
    python benchmarks/float32_md.py --model runs/gpaw/model/wse2_gpaw.model --temps 300 --dts 1
    python benchmarks/float32_md.py --parts static      # only part 3, parts 1-2 kept from --output
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
DTYPES = ("float64", "float32")
PARTS = ("md", "speed", "forces", "static")

RUN0_INPUT = """
units           metal
atom_style      atomic
boundary        p p f
read_data       ${data}
pair_style      mace
pair_coeff      * * ${model} W Se
compute         vir all pressure NULL virial
thermo_style    custom step pe vol c_vir[1] c_vir[2] c_vir[3] c_vir[4] c_vir[5] c_vir[6]
thermo_modify   format float %.16g
dump            d all custom 1 ${prefix}forces.dump id fx fy fz
dump_modify     d sort id format float %.16g
run             0
"""


def find_model(given: Path | None) -> Path | None:
    """The mace-torch model to measure: ``given``, the quick run of the tests, or the demo's."""
    from mlff2d.errors import InputError
    from mlff2d.training.workflows import TrainWorkflow

    if given is not None:
        return given
    for run in (os.environ.get("MLFF2D_QUICK_MODEL_RUN"), REPO / "runs" / "demo" / "model"):
        if run:
            try:
                return Path(TrainWorkflow.load(run).model)
            except InputError:
                continue
    return None


def export_both(model: Path, work: Path) -> dict[str, Path]:
    """``mlff2d export`` of ``model`` in float64 and float32 (TorchScript only; reused on rerun)."""
    from mlff2d.training.workflows import ExportSettings, ExportWorkflow

    out = {}
    for dtype in DTYPES:
        settings = ExportSettings(model=model, dtype=dtype, symmetrix=False)
        out[dtype] = ExportWorkflow(settings, work / f"export_{dtype}", progress=False).run().lammps_model
    return out


def run0(atoms, model: Path, elements: list[str], work: Path, tag: str) -> dict[str, np.ndarray]:
    """Energy (eV), forces (eV/Å, by atom id) and virial (eV, 3x3) of ``pair_style mace`` (``run 0``)."""
    from mlff2d.lammps.run import read_thermo, run_lammps, write_data
    from mlff2d.units import LAMMPS_METAL_NKTV2P

    write_data(atoms, work / f"{tag}.data", elements)
    (work / "in.run0").write_text(RUN0_INPUT)
    variables = {"data": f"{tag}.data", "model": Path(model).resolve(), "prefix": f"{tag}_"}
    run_lammps("in.run0", variables, cwd=work, log=f"{tag}.log", timeout=600)
    (run,) = read_thermo(work / f"{tag}.log")
    p = [run[f"c_vir[{i}]"][0] for i in range(1, 7)]  # xx yy zz xy xz yz (bar)
    v = np.array([[p[0], p[3], p[4]], [p[3], p[1], p[5]], [p[4], p[5], p[2]]])
    return {
        "energy": float(run["PotEng"][0]),
        "forces": np.loadtxt(work / f"{tag}_forces.dump", skiprows=9)[:, 1:4],
        "virial": v * run["Volume"][0] / LAMMPS_METAL_NKTV2P,
    }


def ase_eval(atoms, model: Path, dtype: str) -> dict[str, np.ndarray]:
    """Energy, forces and virial of mace-torch's ``MACECalculator`` in ``dtype``."""
    from mlff2d.training.calculator import calculator

    a = atoms.copy()
    a.calc = calculator(model, "cpu", dtype)
    return {
        "energy": float(a.get_potential_energy()),
        "forces": a.get_forces(),
        "virial": -a.get_stress(voigt=False) * a.get_volume(),
    }


def phonon_bands(model: Path, unit, n: int, dtype: str) -> np.ndarray:
    """Harmonic frequencies (THz) along Γ-M-K-Γ of ``unit`` in an n x n supercell (0.01 Å displacements)."""
    from mlff2d.phonons.core import band_path, make_phonopy, produce_force_constants
    from mlff2d.phonons.engines.calculator import ASEEngine
    from mlff2d.training.calculator import calculator

    phonon = make_phonopy(unit, (n, n))
    produce_force_constants(phonon, ASEEngine(calculator(model, "cpu", dtype)), None, progress=False)
    return band_path(phonon, npoints=21).frequencies


def relaxed(atoms, model: Path, dtype: str, fmax: float, cell: bool) -> tuple[object | None, str]:
    """``mlff2d.phonons.core.relax`` in ``dtype``: the structure, or None and the reason it failed."""
    from mlff2d.errors import CalculationFailed
    from mlff2d.phonons.core import relax
    from mlff2d.training.calculator import calculator

    try:
        return relax(atoms, calculator(model, "cpu", dtype), fmax=fmax, cell=cell, steps=1000), "converged"
    except CalculationFailed as exc:
        return None, str(exc)


def static_checks(model: Path, defect_cell, n_phonon: int) -> dict:
    """float32 in the stages that stay float64: cell relaxation, harmonic phonons, defect relaxation.

    The pristine unit cell is relaxed (positions and in-plane cell, fmax 1e-4 eV/Å, the default of
    ``mlff2d phonons``) in both precisions; the float64 cell then gives the phonon bands of an
    ``n_phonon`` x ``n_phonon`` supercell in both precisions; the V_Se cell is relaxed (positions,
    2e-3 eV/Å, the defect default) in both precisions from the same start.
    """
    from mlff2d.structures import monolayer

    out: dict = {}
    unit = {d: relaxed(monolayer("WSe2"), model, d, 1e-4, True) for d in DTYPES}
    out["unit_cell_relax_1e-4"] = {d: unit[d][1] for d in DTYPES}
    if unit["float32"][0] is not None:
        a32, a64 = (unit[d][0].cell.cellpar()[0] for d in DTYPES)
        out["lattice_constant_diff_A"] = float(abs(a32 - a64))
    f = {d: phonon_bands(model, unit["float64"][0], n_phonon, d) for d in DTYPES}
    out |= {
        "phonon_supercell": f"{n_phonon}x{n_phonon}",
        "phonon_max_dfreq_THz": float(np.abs(f["float32"] - f["float64"]).max()),
        "phonon_max_freq_THz": float(f["float64"].max()),
    }
    defect = {d: relaxed(defect_cell, model, d, 2e-3, False) for d in DTYPES}
    out["defect_relax_2e-3"] = {d: defect[d][1] for d in DTYPES}
    if all(defect[d][0] is not None for d in DTYPES):
        from ase.geometry import find_mic

        r32, r64 = (defect[d][0] for d in DTYPES)
        _, dr = find_mic(r32.positions - r64.positions, r64.cell, r64.pbc)
        out["defect_relaxed_max_dr_A"] = float(dr.max())
    print(f"  static: {json.dumps(out)}", flush=True)
    return out


def difference(lo: dict, hi: dict, natoms: int) -> dict[str, float]:
    """float32 minus float64: max and RMS |dF| (meV/Å), |dE| (meV/atom), max |dW| (meV/atom)."""
    df = np.linalg.norm(lo["forces"] - hi["forces"], axis=1)
    return {
        "dF_max_meV_A": float(1e3 * df.max()),
        "dF_rms_meV_A": float(1e3 * np.sqrt(np.mean(df**2))),
        "dE_meV_atom": float(1e3 * abs(lo["energy"] - hi["energy"]) / natoms),
        "dvirial_max_meV_atom": float(1e3 * np.abs(lo["virial"] - hi["virial"]).max() / natoms),
        "F_rms_meV_A": float(1e3 * np.sqrt(np.mean(np.sum(hi["forces"] ** 2, axis=1)))),
    }


def nve_stats(log: Path, natoms: int, dt_fs: float) -> dict[str, float]:
    """Drift (meV/atom/ps), fluctuation about the fit and max - min (meV/atom), mean T of the NVE run."""
    from mlff2d.lammps.run import read_thermo

    run = read_thermo(log)[-1]
    t_ps = run["Step"] * dt_fs * 1e-3
    e = 1e3 * run["TotEng"] / natoms
    slope, icpt = np.polyfit(t_ps, e, 1)
    return {
        "drift_meV_atom_ps": float(slope),
        "fluct_meV_atom": float(np.std(e - (slope * t_ps + icpt))),
        "spread_meV_atom": float(e.max() - e.min()),
        "T_mean_K": float(run["Temp"][1:].mean()),
        "length_ps": float(t_ps[-1] - t_ps[0]),
    }


def md_pair(models: dict[str, Path], data: Path, work: Path, temp: float, dt: float, args) -> dict:
    """float64 (with equilibration) then float32 NVE from the same restart; stats and speed of both."""
    from mlff2d.lammps.run import inputs_dir, run_lammps

    tag = f"T{temp:g}_dt{dt:g}"
    common = {
        "data": data.resolve(),
        "minimize": 0,
        "T": temp,
        "dt": dt,
        "steps": args.steps,
        "thermo": max(1, args.steps // 200),
        "dump_every": args.steps,  # first and last NVE frame (the last one feeds the force errors)
    }
    row: dict = {"T_K": temp, "dt_fs": dt, "steps": args.steps}
    restart = work / f"{tag}_float64_equilibrated.restart"
    for dtype in DTYPES:
        prefix = f"{tag}_{dtype}_"
        v = common | {"model": models[dtype].resolve(), "prefix": prefix, "equil": args.equil}
        if dtype != "float64":
            v["restart"] = restart.resolve()
        res = run_lammps(
            inputs_dir() / "in.wse2_defect", v, cwd=work, log=f"{prefix}log.lammps", timeout=3600
        )
        loop = res.loop_times()[-1]
        stats = nve_stats(work / f"{prefix}log.lammps", loop["atoms"], dt)
        stats["ms_per_step"] = 1e3 * loop["seconds"] / loop["steps"]
        mt = res.mace_timings()
        if mt:
            stats["model_ms"] = 1e3 * mt[-1]["model"] / max(mt[-1]["evaluations"], 1)
        row[dtype] = {k: float(f"{x:.4g}") for k, x in stats.items()}
        print(f"  NVE {tag} {dtype}: {json.dumps(row[dtype])}", flush=True)
    row["speed_ratio_f32_f64"] = round(row["float32"]["ms_per_step"] / row["float64"]["ms_per_step"], 3)
    if "model_ms" in row["float32"]:
        row["model_ratio_f32_f64"] = round(row["float32"]["model_ms"] / row["float64"]["model_ms"], 3)
    return row


def speed(models: dict[str, Path], data: Path, work: Path, repeats: int, steps: int) -> dict:
    """ms per MD step of each precision (``in.bench``), alternating, fastest of ``repeats`` kept."""
    from lammps_plugin import lammps_ms  # benchmarks/lammps_plugin.py, same folder

    best = dict.fromkeys(DTYPES, float("inf"))
    model_best = dict.fromkeys(DTYPES, float("inf"))
    for _ in range(repeats):
        for dtype in DTYPES:
            res = lammps_ms(work, data, "mace", models[dtype], steps, 1)
            best[dtype] = min(best[dtype], res["ms_per_step"])
            model_best[dtype] = min(model_best[dtype], res.get("model_ms", float("inf")))
    out = {f"{d}_ms_per_step": round(best[d], 2) for d in DTYPES}
    out |= {"steps": steps, "repeats": repeats, "f32_over_f64": round(best["float32"] / best["float64"], 3)}
    out["f32_over_f64_model_call"] = round(model_best["float32"] / model_best["float64"], 3)
    print(f"  speed: {json.dumps(out)}", flush=True)
    return out


def last_frame(work: Path, tag: str, template):
    """The last NVE frame of a float64 run (``traj.extxyz``), as a copy of ``template`` moved there."""
    from ase.io import read

    frame = read(work / f"{tag}_float64_traj.extxyz", index=-1)
    atoms = template.copy()
    atoms.positions = frame.positions
    return atoms


def force_errors(
    models, model_file: Path, structures: dict, work: Path, elements, use_ase: bool
) -> list[dict]:
    """One row per structure: float32 - float64 through the plugin (and ASE), plus plugin f64 vs ASE f64."""
    rows = []
    for name, atoms in structures.items():
        got = {d: run0(atoms, models[d], elements, work, f"{name}_{d}") for d in DTYPES}
        row = {
            "structure": name,
            "atoms": len(atoms),
            "lammps": difference(got["float32"], got["float64"], len(atoms)),
        }
        if use_ase:
            ref = {d: ase_eval(atoms, model_file, d) for d in DTYPES}
            row["ase"] = difference(ref["float32"], ref["float64"], len(atoms))
            row["lammps_f64_vs_ase_f64_dF_max_meV_A"] = difference(
                got["float64"], ref["float64"], len(atoms)
            )["dF_max_meV_A"]
        rows.append(row)
        print(f"  forces {name}: {json.dumps(row)}", flush=True)
    return rows


def markdown(result: dict) -> str:
    """The tables of the README: force errors, NVE runs, the float64-only stages."""
    out = [
        "| structure | atoms | max / RMS dF, plugin (meV/Å) | dE (meV/atom) | max dW (meV/atom) "
        "| max / RMS dF, ASE (meV/Å) | RMS F (meV/Å) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result.get("force_errors", []):
        lm, ase = r["lammps"], r.get("ase")
        ase_txt = f"{ase['dF_max_meV_A']:.2g} / {ase['dF_rms_meV_A']:.2g}" if ase else "–"
        out.append(
            f"| {r['structure']} | {r['atoms']} | {lm['dF_max_meV_A']:.2g} / {lm['dF_rms_meV_A']:.2g} "
            f"| {lm['dE_meV_atom']:.2g} | {lm['dvirial_max_meV_atom']:.2g} | {ase_txt} "
            f"| {lm['F_rms_meV_A']:.0f} |"
        )
    out += [
        "",
        "| T (K) | dt (fs) | NVE (ps) | drift f64 / f32 (meV/atom/ps) | fluctuation f64 / f32 (meV/atom) "
        "| T mean (K) | ms/step f64 / f32 | f32/f64 step (model call) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result.get("nve", []):
        a, b = r["float64"], r["float32"]
        out.append(
            f"| {r['T_K']:g} | {r['dt_fs']:g} | {a['length_ps']:.1f} "
            f"| {a['drift_meV_atom_ps']:.3g} / {b['drift_meV_atom_ps']:.3g} "
            f"| {a['fluct_meV_atom']:.3g} / {b['fluct_meV_atom']:.3g} | {a['T_mean_K']:.0f} "
            f"| {a['ms_per_step']:.1f} / {b['ms_per_step']:.1f} "
            f"| {r['speed_ratio_f32_f64']:.2f} ({r.get('model_ratio_f32_f64', float('nan')):.2f}) |"
        )
    if "speed" in result:
        sp = result["speed"]
        out += [
            "",
            f"MD step, fastest of {sp['repeats']} alternating runs of {sp['steps']} steps: float64 "
            f"{sp['float64_ms_per_step']} ms, float32 {sp['float32_ms_per_step']} ms "
            f"(float32/float64 {sp['f32_over_f64']}; model call {sp['f32_over_f64_model_call']}).",
        ]
    if "static" in result:
        out += ["", "| float64 stage, float32 instead | value |", "|---|---|"]
        for k, v in result["static"].items():
            txt = ", ".join(f"{a}: {b}" for a, b in v.items()) if isinstance(v, dict) else v
            out.append(f"| {k} | {txt:.3g} |" if isinstance(v, float) else f"| {k} | {txt} |")
    return "\n".join(out)


def headline(result: dict) -> dict[str, float]:
    """Worst cases over the structures and MD runs; the phonon frequency error."""
    h: dict[str, float] = {}
    force_rows, md_rows = result.get("force_errors"), result.get("nve")
    if force_rows:
        for key in ("dF_max_meV_A", "dE_meV_atom", "dvirial_max_meV_atom"):
            h[f"f32_{key}"] = max(r["lammps"][key] for r in force_rows)
    if md_rows:
        for dtype, short in (("float64", "f64"), ("float32", "f32")):
            h[f"{short}_abs_drift_max_meV_atom_ps"] = max(abs(r[dtype]["drift_meV_atom_ps"]) for r in md_rows)
        h["f32_over_f64_step_time_median_nve"] = float(np.median([r["speed_ratio_f32_f64"] for r in md_rows]))
    if "speed" in result:
        h["f32_over_f64_step_time"] = result["speed"]["f32_over_f64"]
    if "static" in result:
        h["f32_phonon_max_dfreq_THz"] = result["static"]["phonon_max_dfreq_THz"]
    return {k: float(f"{v:.4g}") for k, v in h.items()}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", type=Path, default=Path("runs/bench/float32_md.json"))
    ap.add_argument("--quick", action="store_true", help="4x4 V_Se, 600 K, 2 fs, 100 NVE steps, 3x3 phonons")
    ap.add_argument("--model", type=Path, default=None, help="mace-torch *.model (default: see above)")
    ap.add_argument("--n", type=int, default=12, help="N of the N x N V_Se cell (12: 431 atoms)")
    ap.add_argument("--temps", type=float, nargs="+", default=[300.0, 600.0], help="K")
    ap.add_argument("--dts", type=float, nargs="+", default=[1.0, 2.0], help="fs")
    ap.add_argument("--equil", type=int, default=500, help="Langevin steps (float64) before NVE")
    ap.add_argument("--steps", type=int, default=2000, help="NVE steps per run")
    ap.add_argument("--speed-steps", type=int, default=100, help="MD steps per timed run (speed part)")
    ap.add_argument("--speed-repeats", type=int, default=3, help="alternating timed runs per precision")
    ap.add_argument("--phonon-supercell", type=int, default=6, help="N of the N x N phonon supercell")
    ap.add_argument("--no-ase", dest="ase", action="store_false", help="skip MACECalculator")
    ap.add_argument(
        "--parts",
        nargs="+",
        choices=PARTS,
        default=list(PARTS),
        help="what to measure (forces needs the md part's last frame); the other parts are kept "
        "from an existing --output of the same model",
    )
    args = ap.parse_args()
    if args.quick:
        args.n, args.temps, args.dts, args.equil, args.steps = 4, [600.0], [2.0], 20, 100
        args.phonon_supercell, args.speed_steps, args.speed_repeats = 3, 20, 2
    return args


def measure(args, model: Path, work: Path, result: dict) -> None:
    """Run the requested parts into ``result`` (keys ``nve``, ``force_errors``, ``static``)."""
    from mlff2d.lammps.run import write_data
    from mlff2d.structures import make_defect, monolayer, supercell

    cell = make_defect(supercell(monolayer("WSe2"), args.n, args.n), "V_Se")
    result["cell"] = f"{args.n}x{args.n} V_Se WSe2, {len(cell)} atoms"
    if {"md", "speed", "forces"} & set(args.parts):
        models = export_both(model, work)
        data = work / f"v_se_{args.n}.data"
        elements = write_data(cell, data, ["W", "Se"])
    if "md" in args.parts:
        result["nve"] = [md_pair(models, data, work, t, dt, args) for t in args.temps for dt in args.dts]
        result["equil_steps"] = args.equil
    if "speed" in args.parts:
        result["speed"] = speed(models, data, work, args.speed_repeats, args.speed_steps)
    if "forces" in args.parts:
        rattled = cell.copy()
        rattled.rattle(0.05, seed=1)
        hot = f"T{max(args.temps):g}_dt{min(args.dts):g}"
        structures = {
            "ideal": cell,
            "rattled_0.05A": rattled,
            f"md_{max(args.temps):g}K": last_frame(work, hot, cell),
        }
        result["force_errors"] = force_errors(models, model, structures, work, elements, args.ase)
    if "static" in args.parts:
        result["static"] = static_checks(model, cell, args.phonon_supercell)


def main() -> int:
    args = parse_args()
    work = args.output.parent / f"{args.output.stem}_work"
    work.mkdir(parents=True, exist_ok=True)
    model = find_model(args.model)
    result: dict = {"benchmark": "float32_md", "threads": 1}
    if model is None:
        result |= {"skipped": "no trained model: pass --model, set MLFF2D_QUICK_MODEL_RUN or run make demo"}
        print(result["skipped"])
        args.output.write_text(json.dumps(result | {"headline": {}}, indent=1))
        return 0
    if set(args.parts) != set(PARTS) and args.output.is_file():
        old = json.loads(args.output.read_text())
        if old.get("model") == str(model):
            result = old
    measure(args, model, work, result)

    import torch

    result |= {
        "model": str(model),
        "load_average": os.getloadavg(),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
    }
    result["headline"] = headline(result)
    result["markdown"] = markdown(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1))
    print(result["markdown"])
    print(json.dumps(result["headline"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
