"""The pipeline report: one section per stage, built from the stages' typed results.

Everything shown comes from the results the stages returned (their small results, metrics and
figure files) and their own command lines, so the report never restates a number that a stage
did not compute and never guesses a file name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
            out += _flatten(v, f"{prefix}{k}.")
        return out
    if isinstance(d, list):
        if len(d) <= 6 and all(isinstance(x, (int, float, str)) for x in d):
            return [
                (prefix.rstrip("."), ", ".join(f"{x:.4g}" if isinstance(x, float) else str(x) for x in d))
            ]
        return []
    return [(prefix.rstrip("."), d)]


def _figures(result: Any, preferred: list[str]) -> list[Figure]:
    pngs = {p.stem: p for p in result.output_files().values() if p.suffix == ".png" and p.is_file()}
    order = [s for s in preferred if s in pngs] + sorted(s for s in pngs if s not in preferred)
    root = Path(result.outdir).parent
    return [Figure(pngs[s], f"{s.replace('_', ' ')} ({_rel(pngs[s], root)})") for s in order]


def _rel(p: Path, root: Path) -> str:
    try:
        return str(p.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(p)


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


def _metrics_table(metrics: dict[str, Any]) -> Table | None:
    groups = {**metrics.get("by_config_type", {}), "overall": metrics.get("overall", {})}

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
    return Table(cols, rows, "Test-split errors per config_type", fmt="{:.3g}") if rows else None


#: results keys not worth a table row (long lists, hashes repeated elsewhere, nested splits).
_SKIP = {
    "valid",
    "test",
    "hashes",
    "label_settings",
    "metrics",
    "counts",
    "gamma",
    "gamma_modes",
    "per_band_rms_THz",
    "per_band_rms_thz",
    "peaks",
    "shell_counts",
    "labels",
    "elements",
    "nve_etotal_start_end_eV",
    "defect_center_A",
}


def _gamma_table(results: dict[str, Any]) -> Table | None:
    gamma = results.get("gamma")
    if not isinstance(gamma, list) or not gamma or not isinstance(gamma[0], dict):
        return None
    cols = list(gamma[0])
    return Table(cols, [[g.get(c) for c in cols] for g in gamma], "Γ modes: reference vs student (THz)")


def _section(stage: Any) -> Section:
    """The report section of one stage (a :class:`mlff2d.pipeline.StageRun`)."""
    title, text, preferred = SECTIONS.get(stage.name, (stage.name, "", []))
    sec = Section(title, [text] if text else [])
    results = stage.result.summary()
    if stage.name == "data":
        sec.tables += [t for t in [_dataset_table(results)] if t]
    if stage.name == "evaluate":
        sec.tables += [t for t in [_metrics_table(getattr(stage.result, "metrics", {}) or {})] if t]
    if stage.name == "validation":
        sec.tables += [t for t in [_gamma_table(results)] if t]
    if stage.name != "data":
        brief = {k: v for k, v in results.items() if k not in _SKIP}
        t = _results_table(brief, "Results of the stage (summary.yaml)")
        if t:
            sec.tables.append(t)
    sec.figures = _figures(stage.result, preferred)
    sec.code.append(stage.workflow.command_line())
    return sec


def build_report(recipe: Any, stages: list[Any]) -> Report:
    """Build the report of a pipeline run from its stages' typed results.

    Parameters
    ----------
    recipe
        The :class:`mlff2d.pipeline.Recipe`.
    stages
        The :class:`mlff2d.pipeline.StageRun` objects run or reused, in order.
    """
    rep = Report(
        f"mlff2d report: {recipe.name}",
        subtitle=(recipe.description or f"{recipe.material}: data → MACE → LAMMPS → phonons"),
    )
    head = headline({s.name: s.result for s in stages})
    if head:
        rep.sections.append(
            Section("Headline numbers", tables=[Table(["quantity", "value"], head, fmt="{:.3g}")])
        )
    rep.sections += [_section(s) for s in stages]
    rows = [[s.name, s.workflow.status, f"{s.workflow.wall_s:.1f}"] for s in stages]
    rows.append(["total", "", f"{sum(s.workflow.wall_s for s in stages):.1f}"])
    note = "Wall time of the computation; a reused stage shows the time of the run that made it."
    rep.sections.append(
        Section("Timings", [note], tables=[Table(["stage", "status", "wall time (s)"], rows)])
    )
    versions = package_versions()
    rep.sections.append(
        Section(
            "Versions and commands",
            ["Each stage again by hand, in order:"],
            tables=[Table(["package", "version"], [[k, v] for k, v in versions.items()])],
            code=[s.workflow.command_line() for s in stages],
        )
    )
    return rep


#: (stage, result field, label) of the headline table.
HEADLINE: list[tuple[str, str, str]] = [
    ("validation", "rms_thz", "phonons, student vs reference: RMS along Γ–M–K–Γ (THz)"),
    ("validation", "max_thz", "phonons, student vs reference: max |Δf| along Γ–M–K–Γ (THz)"),
    ("md", "ms_per_step", "MD with pair_style mace: wall time per step (ms)"),
    ("md", "nve_drift_meV_per_atom_per_ps", "MD: NVE energy drift (meV/atom/ps)"),
    ("md", "mean_temperature_K", "MD: mean temperature (K)"),
    ("vdos", "max_abs_peak_shift_thz", "VDOS (MD) vs harmonic DOS: largest peak shift (THz)"),
    ("dispersion", "median_abs_shift_thz", "MD dispersion vs harmonic bands: median shift (THz)"),
]


def headline(results: dict[str, Any]) -> list[list[Any]]:
    """The headline numbers of a run: test-split errors, phonon agreement, MD figures.

    Parameters
    ----------
    results
        Stage name -> typed result.
    """
    rows: list[list[Any]] = []
    ev = results.get("evaluate")
    if ev is not None:
        overall = (getattr(ev, "metrics", {}) or {}).get("overall", {})
        rows.append(["energy RMSE, test split (meV/atom)", overall.get("energy", {}).get("rmse")])
        rows.append(["force RMSE, test split (meV/Å)", overall.get("forces", {}).get("rmse")])
    for stage, key, label in HEADLINE:
        res = results.get(stage)
        val = _flatten_get(res.summary(), key) if res is not None else None
        if isinstance(val, (int, float)):
            rows.append([label, float(val)])
    return [r for r in rows if r[1] is not None]


def _flatten_get(summary: dict[str, Any], key: str) -> Any:
    """``summary[key]``, also found one level down (e.g. ``thermo.ms_per_step``)."""
    if key in summary:
        return summary[key]
    for v in summary.values():
        if isinstance(v, dict) and key in v:
            return v[key]
    return None
