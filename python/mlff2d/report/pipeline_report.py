"""The pipeline report: one section per stage, built from the stage folders' own records.

Everything shown comes from files the stages wrote (``summary.yaml``, ``metrics.json``,
figures), so the report never restates a number that a stage did not compute.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml

from mlff2d.report.document import Figure, Report, Section, Table
from mlff2d.runinfo import package_versions

#: step -> (section title, what it shows, preferred figure stems in display order).
SECTIONS: dict[str, tuple[str, str, list[str]]] = {
    "data": ("Dataset", "Structures per split and config_type, labelled by the reference calculator.", []),
    "model": ("Training", "MACE trained with mace-torch on the training split.", []),
    "evaluate": (
        "Errors on the test split",
        "Energy per atom, force and stress errors of the model on held-out structures; parity plots.",
        ["parity_energy", "parity_forces"],
    ),
    "export": ("Export", "TorchScript model for pair_style mace.", []),
    "phonons_reference": (
        "Reference phonons",
        "Phonopy phonons of the reference calculator itself.",
        ["phonon_bands_pdos"],
    ),
    "phonons": (
        "Harmonic phonons (MACE)",
        "Phonopy finite displacements with the model: pristine bands "
        "and PDOS, the defect supercell unfolded onto the primitive path, localised modes and the "
        "radial local PDOS around the defect.",
        ["phonon_bands_pdos", "compare_12x12_band_pdos", "local_pdos_overview", "ipr"],
    ),
    "validation": (
        "Validation: student vs reference",
        "Phonon frequencies of the model against the reference along Γ–M–K–Γ.",
        [],
    ),
    "md": (
        "Molecular dynamics (LAMMPS, pair_style mace)",
        "Equilibration then NVE production of the defect supercell with the plugin.",
        [],
    ),
    "vdos": (
        "Vibrational DOS from MD (dynasor)",
        "Mass-weighted velocity power spectra: total, per "
        "element and per radial shell around the defect, over the harmonic DOS.",
        ["vdos_vs_harmonic", "vdos_radial"],
    ),
    "dispersion": (
        "Dispersion from MD (dynasor)",
        "Longitudinal and transverse current correlations on "
        "the commensurate q-points of Γ–M–K–Γ, harmonic bands overlaid.",
        ["dispersion_md"],
    ),
}


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    if isinstance(d, dict):
        for k, v in d.items():
            out += _flatten(v, f"{prefix}{k}." if not isinstance(v, (dict)) else f"{prefix}{k}.")
        return out
    if isinstance(d, list):
        if len(d) <= 6 and all(isinstance(x, (int, float, str)) for x in d):
            return [
                (prefix.rstrip("."), ", ".join(f"{x:.4g}" if isinstance(x, float) else str(x) for x in d))
            ]
        return []
    return [(prefix.rstrip("."), d)]


def _summary(folder: Path) -> dict[str, Any]:
    p = folder / "summary.yaml"
    return yaml.safe_load(p.read_text()) if p.is_file() else {}


def _figures(folder: Path, preferred: list[str]) -> list[Figure]:
    pngs = {p.stem: p for p in sorted(folder.rglob("*.png"))}
    order = [s for s in preferred if s in pngs] + [s for s in pngs if s not in preferred]
    return [Figure(pngs[s], f"{s.replace('_', ' ')} ({pngs[s].relative_to(folder.parent)})") for s in order]


def _results_table(results: dict[str, Any], caption: str, limit: int = 40) -> Table | None:
    rows = [[k, v] for k, v in _flatten(results) if isinstance(v, (int, float, str)) and k][:limit]
    return Table(["quantity", "value"], rows, caption) if rows else None


def _dataset_table(results: dict[str, Any]) -> Table | None:
    counts = results.get("counts")
    if not counts:
        return None
    types = sorted({t for split in counts.values() for t in split})
    rows = [[t, *(counts.get(s, {}).get(t, 0) for s in ("train", "valid", "test"))] for t in types]
    rows.append(["all", *(sum(counts.get(s, {}).values()) for s in ("train", "valid", "test"))])
    return Table(["config_type", "train", "valid", "test"], rows, "Structures per split")


def _metrics_tables(folder: Path) -> list[Table]:
    path = folder / "metrics.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    groups = {**data.get("by_config_type", {}), "overall": data.get("overall", {})}

    def row(name: str, g: dict[str, Any]) -> list[Any]:
        e, f, st = g.get("energy", {}), g.get("forces", {}), g.get("stress", {})
        return [
            name,
            g.get("n_configs"),
            e.get("mae"),
            e.get("rmse"),
            f.get("mae"),
            f.get("rmse"),
            st.get("rmse"),
        ]

    rows = [row(k, g) for k, g in groups.items() if g]
    cols = [
        "config_type",
        "N",
        "E MAE (meV/atom)",
        "E RMSE (meV/atom)",
        "F MAE (meV/Å)",
        "F RMSE (meV/Å)",
        "S RMSE (meV/Å³)",
    ]
    return [Table(cols, rows, "Test-split errors per config_type", fmt="{:.3g}")]


#: results keys not worth a table row (long lists, hashes repeated elsewhere, nested splits).
_SKIP = {
    "valid",
    "test",
    "gamma",
    "per_band_rms_THz",
    "peaks",
    "shell_counts",
    "labels",
    "elements",
    "pristine",
    "defect",
    "nve_etotal_start_end_eV",
    "defect_center_A",
}


def _gamma_table(results: dict[str, Any]) -> Table | None:
    gamma = results.get("gamma")
    if not isinstance(gamma, list) or not gamma or not isinstance(gamma[0], dict):
        return None
    cols = list(gamma[0])
    return Table(cols, [[g.get(c) for c in cols] for g in gamma], "Γ modes: reference vs student (THz)")


def build_report(recipe: Any, rundir: Path, steps: list[Any], timings: dict[str, float]) -> Report:
    """Build the report of a pipeline run from its step folders.

    Parameters
    ----------
    recipe
        The :class:`mlff2d.pipeline.Recipe`.
    rundir
        The run folder.
    steps
        The :class:`mlff2d.pipeline.Step` objects that were run or skipped, in order.
    timings
        Step name -> wall time (s).
    """
    rep = Report(
        f"mlff2d report: {recipe.name}",
        subtitle=(recipe.description or f"{recipe.material}: data → MACE → LAMMPS → phonons"),
    )
    head = _headline(rundir)
    if head:
        rep.sections.append(
            Section("Headline numbers", tables=[Table(["quantity", "value"], head, fmt="{:.3g}")])
        )
    for step in steps:
        folder = rundir / step.name
        title, text, preferred = SECTIONS.get(step.name, (step.name, "", []))
        summ = _summary(folder)
        sec = Section(title, [text] if text else [])
        if step.name == "data":
            t = _dataset_table(summ.get("results", {}))
            if t:
                sec.tables.append(t)
        elif step.name == "evaluate":
            sec.tables += _metrics_tables(folder)
        results = summ.get("results", {}) or {}
        if step.name == "validation":
            t = _gamma_table(results)
            if t:
                sec.tables.append(t)
        if step.name != "data":
            brief = {k: v for k, v in results.items() if k not in _SKIP}
            t = _results_table(brief, "Results recorded by the stage (summary.yaml)")
            if t:
                sec.tables.append(t)
        sec.figures = _figures(folder, preferred) if folder.is_dir() else []
        sec.code.append("mlff2d " + shlex.join(str(a) for a in step.argv))
        rep.sections.append(sec)
    rows = [[name, f"{wall:.1f}"] for name, wall in timings.items()]
    rows.append(["total", f"{sum(timings.values()):.1f}"])
    rep.sections.append(Section("Timings", tables=[Table(["stage", "wall time (s)"], rows)]))
    versions = package_versions()
    rep.sections.append(
        Section(
            "Versions and commands",
            tables=[Table(["package", "version"], [[k, v] for k, v in versions.items()])],
            code=["mlff2d " + shlex.join(str(a) for a in s.argv) for s in steps],
        )
    )
    return rep


def _headline(rundir: Path) -> list[list[Any]]:
    rows: list[list[Any]] = []
    ev = rundir / "evaluate" / "metrics.json"
    if ev.is_file():
        overall = json.loads(ev.read_text()).get("overall", {})
        rows.append(["energy RMSE, test split (meV/atom)", overall.get("energy", {}).get("rmse")])
        rows.append(["force RMSE, test split (meV/Å)", overall.get("forces", {}).get("rmse")])
    picks = [
        ("validation", "rms_THz", "phonons, student vs reference: RMS along Γ–M–K–Γ (THz)"),
        ("validation", "max_THz", "phonons, student vs reference: max |Δf| along Γ–M–K–Γ (THz)"),
        ("md", "ms_per_step", "MD with pair_style mace: wall time per step (ms)"),
        ("md", "nve_drift_meV_per_atom_per_ps", "MD: NVE energy drift (meV/atom/ps)"),
        ("md", "mean_temperature_K", "MD: mean temperature (K)"),
        ("vdos", "max_abs_peak_shift_thz", "VDOS (MD) vs harmonic DOS: largest peak shift (THz)"),
        ("dispersion", "median_abs_shift_thz", "MD dispersion vs harmonic bands: median shift (THz)"),
    ]
    for step, key, label in picks:
        val = _summary(rundir / step).get("results", {}) or {}
        if isinstance(val.get(key), (int, float)):
            rows.append([label, float(val[key])])
    return [r for r in rows if r[1] is not None]
