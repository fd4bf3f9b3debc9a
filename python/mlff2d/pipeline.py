"""The end-to-end pipeline: ``mlff2d run analysis/<recipe>.yaml -o runs/<name>``.

The pipeline composes the stage commands (the same ones a user runs by hand), each writing
into its own sub-folder of the run folder. A stage is skipped when its record
(``.pipeline/<stage>.json``: the exact command, the hashes of its input files, its outputs)
matches what it would run now, so running again right after is a no-op. A stage that was
interrupted has no record and is run again; every command resumes its own work (label store,
training checkpoints, phonon displacement cache, MD restart files).
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import yaml

from mlff2d.config import from_dict, load_yaml, to_dict
from mlff2d.errors import CalculationFailed, ConfigError
from mlff2d.runinfo import RunRecord, atomic_write_text, file_hash, write_summary

logger = logging.getLogger(__name__)


@dataclass
class Step:
    """One pipeline step: a stage command and what it reads and writes.

    Attributes
    ----------
    name
        Step name, also its sub-folder of the run folder.
    argv
        Arguments of ``mlff2d`` (e.g. ``["train", "cfg.yaml", "-o", "run/model"]``).
    inputs
        Files whose content decides whether the step must run again.
    outputs
        Files that must exist for the step to count as done.
    """

    name: str
    argv: list[str]
    inputs: list[Path] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)

    def fingerprint(self) -> dict[str, Any]:
        """The command and the hashes of its inputs."""
        return {
            "argv": [str(a) for a in self.argv],
            "inputs": {str(p): (file_hash(p) if p.is_file() else None) for p in self.inputs},
        }


class StepRunner:
    """Runs steps in order, skipping those whose record matches, timing all of them."""

    def __init__(self, rundir: Path, force: bool = False) -> None:
        self.rundir = rundir
        self.force = force
        self.records = rundir / ".pipeline"
        self.timings: dict[str, float] = {}
        self.status: dict[str, str] = {}

    def _record(self, step: Step) -> Path:
        return self.records / f"{step.name}.json"

    def up_to_date(self, step: Step) -> bool:
        """True if the step's record matches its fingerprint and its outputs exist."""
        rec = self._record(step)
        if self.force or not rec.is_file():
            return False
        try:
            old = json.loads(rec.read_text())
        except json.JSONDecodeError:
            return False
        same = {k: old.get(k) for k in ("argv", "inputs")} == step.fingerprint()
        return same and all(p.exists() for p in step.outputs)

    def run(self, step: Step) -> None:
        """Run ``step`` unless it is up to date.

        Raises
        ------
        CalculationFailed
            If the stage command exits non-zero.
        """
        from mlff2d.cli import main

        if self.up_to_date(step):
            self.status[step.name] = "up to date"
            old = json.loads(self._record(step).read_text())
            self.timings[step.name] = old.get("wall_s", 0.0)
            click.echo(f"[{step.name}] up to date, skipped")
            return
        click.secho(f"[{step.name}] mlff2d {shlex.join(map(str, step.argv))}", bold=True)
        t0 = time.perf_counter()
        code = main([str(a) for a in step.argv])
        wall = round(time.perf_counter() - t0, 2)
        if code != 0:
            raise CalculationFailed(
                f"stage '{step.name}' failed (exit {code})",
                "fix the cause printed above and run the same command again: finished stages are kept",
            )
        missing = [str(p) for p in step.outputs if not p.exists()]
        if missing:
            raise CalculationFailed(f"stage '{step.name}' did not write {missing}")
        self.timings[step.name] = wall
        self.status[step.name] = "ran"
        atomic_write_text(self._record(step), json.dumps({**step.fingerprint(), "wall_s": wall}, indent=1))


# -- the recipe --------------------------------------------------------------------------------


@dataclass
class DatasetSpec:
    """Where the data comes from: a dataset recipe, or existing extxyz files.

    Attributes
    ----------
    recipe
        A dataset recipe YAML (``training/datasets/*.yaml``), run by ``mlff2d dataset``.
    store
        Label store for the recipe (e.g. the shipped DFT store), default ``<run>/data/labels``.
    train, valid, test
        Existing extxyz files instead of a recipe.
    """

    recipe: str | None = None
    store: str | None = None
    train: str | None = None
    valid: str | None = None
    test: str | None = None


@dataclass
class TrainSpec:
    """``mlff2d train`` options: the mace-torch config and the device."""

    config: str = "training/wse2_sw_quick.yaml"
    device: str | None = None
    dtype: str = "float64"


@dataclass
class ReferenceSpec:
    """The reference phonons the student is validated against.

    Attributes
    ----------
    calculator
        ``"sw"``: the SW teacher's own phonons, computed by Phonopy through LAMMPS (no ML).
        ``"file"``: precomputed phonons (e.g. DFT) in ``phonons``.
    phonons
        ``phonopy_params.yaml`` or an ``mlff2d phonons`` folder (``calculator: file``).
    label
        Legend label.
    """

    calculator: str = "sw"
    phonons: str | None = None
    label: str = "SW teacher"


@dataclass
class PhononSpec:
    """``mlff2d phonons`` options for the student model."""

    supercell: list[int] = field(default_factory=lambda: [6, 6])
    defect: str | None = "V_Se"
    defect_supercell: list[int] = field(default_factory=lambda: [12, 12])
    shell_width: float = 2.0
    options: list[str] = field(default_factory=list)


@dataclass
class MDSpec:
    """``mlff2d md`` options (production MD of the defect supercell with the plugin)."""

    enabled: bool = True
    supercell: list[int] = field(default_factory=lambda: [12, 12])
    defect: str | None = "V_Se"
    temperature: float = 300.0
    dt: float = 1.0
    equil_steps: int = 2000
    steps: int = 5000
    dump_every: int = 5
    nprocs: int = 1
    threads: int = 1
    options: list[str] = field(default_factory=list)


@dataclass
class SpectraSpec:
    """``mlff2d vdos`` / ``mlff2d dispersion`` options."""

    vdos: bool = True
    dispersion: bool = True
    shell_width: float = 3.0
    vdos_options: list[str] = field(default_factory=list)
    dispersion_options: list[str] = field(default_factory=list)


@dataclass
class Recipe:
    """An analysis recipe (``analysis/*.yaml``): the whole pipeline's settings."""

    name: str
    material: str = "WSe2"
    description: str = ""
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    reference: ReferenceSpec = field(default_factory=ReferenceSpec)
    phonons: PhononSpec = field(default_factory=PhononSpec)
    md: MDSpec = field(default_factory=MDSpec)
    spectra: SpectraSpec = field(default_factory=SpectraSpec)


def load_recipe(path: str | Path) -> Recipe:
    """Read an analysis recipe; unknown keys are errors naming the key."""
    recipe = from_dict(Recipe, load_yaml(path), where=str(path))
    if not recipe.dataset.recipe and not recipe.dataset.train:
        raise ConfigError(f"{path}: dataset needs a recipe or train/valid/test files")
    if recipe.reference.calculator not in ("sw", "file"):
        raise ConfigError(f"{path}: reference.calculator must be sw or file")
    if recipe.reference.calculator == "file" and not recipe.reference.phonons:
        raise ConfigError(f"{path}: reference.phonons is needed with calculator: file")
    return recipe


# -- steps ---------------------------------------------------------------------------------------


def stage_outputs(folder: Path) -> dict[str, Path]:
    """Outputs recorded in ``folder/summary.yaml``, as paths (relative ones resolved in ``folder``)."""
    summary = folder / "summary.yaml"
    if not summary.is_file():
        raise CalculationFailed(f"{summary} is missing", "run the pipeline again")
    outs = yaml.safe_load(summary.read_text()).get("outputs", {}) or {}
    resolved = {}
    for k, v in outs.items():
        p = Path(str(v))
        resolved[k] = p if p.is_absolute() or p.exists() else folder / p
    return resolved


def _pick(outputs: dict[str, Path], *keys: str) -> Path:
    for k in keys:
        if k in outputs:
            return outputs[k]
    raise CalculationFailed(f"none of the outputs {keys} was recorded; found {sorted(outputs)}")


class Pipeline:
    """Builds and runs the steps of a recipe in a run folder, then writes the report.

    Parameters
    ----------
    recipe_path
        The analysis recipe YAML.
    rundir
        The run folder (one sub-folder per step).
    force
        Run every step again.
    """

    def __init__(self, recipe_path: str | Path, rundir: str | Path, force: bool = False) -> None:
        self.recipe_path = Path(recipe_path)
        self.recipe = load_recipe(self.recipe_path)
        self.rundir = Path(rundir)
        self.runner = StepRunner(self.rundir, force=force)
        self.steps: list[Step] = []

    def _do(self, step: Step) -> Path:
        self.steps.append(step)
        self.runner.run(step)
        return self.rundir / step.name

    def data_files(self) -> dict[str, Path]:
        """Train/valid/test files (running the dataset step if the recipe has one)."""
        ds = self.recipe.dataset
        if ds.recipe:
            out = self.rundir / "data"
            argv = ["dataset", ds.recipe, "-o", out] + (["--store", ds.store] if ds.store else [])
            self._do(Step("data", argv, [Path(ds.recipe)], [out / "train.extxyz", out / "test.extxyz"]))
            return {s: out / f"{s}.extxyz" for s in ("train", "valid", "test")}
        return {s: Path(getattr(ds, s)) for s in ("train", "valid", "test") if getattr(ds, s)}

    def run(self) -> dict[str, Any]:
        """Run every step (skipping those up to date) and write the report."""
        r, run = self.recipe, self.rundir
        run.mkdir(parents=True, exist_ok=True)
        data = self.data_files()
        tr = r.train
        targs = (
            ["--data", run / "data"]
            if r.dataset.recipe
            else sum((["--" + s + "-file", p] for s, p in data.items()), [])
        )
        dev = ["--device", tr.device] if tr.device else []
        self._do(
            Step(
                "model",
                ["train", tr.config, "-o", run / "model", *targs, *dev],
                [Path(tr.config), *data.values()],
                [run / "model" / "summary.yaml"],
            )
        )
        model = _pick(stage_outputs(run / "model"), "model")
        self._do(
            Step(
                "evaluate",
                ["evaluate", model, data["test"], "-o", run / "evaluate", *dev],
                [model, data["test"]],
                [run / "evaluate" / "summary.yaml"],
            )
        )
        self._do(
            Step(
                "export",
                ["export", model, "-o", run / "export", "--dtype", tr.dtype],
                [model],
                [run / "export" / "summary.yaml"],
            )
        )
        lmp_model = _pick(stage_outputs(run / "export"), "lammps_model")
        ph = r.phonons
        sc = [str(v) for v in ph.supercell]
        if r.reference.calculator == "sw":
            self._do(
                Step(
                    "phonons_reference",
                    [
                        "phonons",
                        "run",
                        r.material,
                        "--calculator",
                        "sw",
                        "--supercell",
                        *sc,
                        "-o",
                        run / "phonons_reference",
                    ],
                    [],
                    [run / "phonons_reference" / "summary.yaml"],
                )
            )
            ref = run / "phonons_reference"
        else:
            ref = Path(r.reference.phonons)
        defect = (
            [
                "--defect",
                ph.defect,
                "--defect-supercell",
                *map(str, ph.defect_supercell),
                "--shell-width",
                str(ph.shell_width),
            ]
            if ph.defect
            else []
        )
        self._do(
            Step(
                "phonons",
                [
                    "phonons",
                    "run",
                    r.material,
                    "--calculator",
                    "mace",
                    "--model",
                    model,
                    "--supercell",
                    *sc,
                    *defect,
                    *dev,
                    *ph.options,
                    "-o",
                    run / "phonons",
                ],
                [model],
                [run / "phonons" / "summary.yaml"],
            )
        )
        self._do(
            Step(
                "validation",
                [
                    "phonons",
                    "compare",
                    ref,
                    run / "phonons",
                    "--label-a",
                    r.reference.label,
                    "--label-b",
                    "MACE student",
                    "-o",
                    run / "validation",
                ],
                [],
                [run / "validation" / "summary.yaml"],
            )
        )
        if r.md.enabled:
            self._md(lmp_model)
        report = self.write_report()
        return {"report": report, "timings": self.runner.timings, "status": self.runner.status}

    def _md(self, lmp_model: Path) -> None:
        r, run, md = self.recipe, self.rundir, self.recipe.md
        argv = [
            "md",
            r.material,
            "--supercell",
            *map(str, md.supercell),
            "--defect",
            md.defect or "none",
            "--pair",
            "mace",
            "--model",
            lmp_model,
            "-T",
            md.temperature,
            "--dt",
            md.dt,
            "--equil-steps",
            md.equil_steps,
            "--steps",
            md.steps,
            "--dump-every",
            md.dump_every,
            "--nprocs",
            md.nprocs,
            "--threads",
            md.threads,
            *md.options,
            "-o",
            run / "md",
        ]
        self._do(Step("md", argv, [lmp_model], [run / "md" / "summary.yaml"]))
        outs = stage_outputs(run / "md")
        traj, cell = _pick(outs, "trajectory"), _pick(outs, "structure")
        sp = r.spectra
        phon = stage_outputs(run / "phonons")
        if sp.vdos:
            # the phonons folder gives the harmonic DOS of the defect cell and its local PDOS shells
            same = md.supercell == r.phonons.defect_supercell and md.defect == r.phonons.defect
            hopt = ["--harmonic", run / "phonons"] if same and "defect.dos" in phon else []
            self._do(
                Step(
                    "vdos",
                    [
                        "vdos",
                        traj,
                        "--structure",
                        cell,
                        "--shell-width",
                        sp.shell_width,
                        *hopt,
                        *sp.vdos_options,
                        "-o",
                        run / "vdos",
                    ],
                    [traj],
                    [run / "vdos" / "summary.yaml"],
                )
            )
        if sp.dispersion:
            hopt = (
                ["--harmonic", phon["pristine.phonopy_params"]] if "pristine.phonopy_params" in phon else []
            )
            self._do(
                Step(
                    "dispersion",
                    [
                        "dispersion",
                        traj,
                        "--structure",
                        cell,
                        *hopt,
                        *sp.dispersion_options,
                        "-o",
                        run / "dispersion",
                    ],
                    [traj],
                    [run / "dispersion" / "summary.yaml"],
                )
            )

    #: stage order in reports.
    ORDER = (
        "data",
        "model",
        "evaluate",
        "export",
        "phonons_reference",
        "phonons",
        "validation",
        "md",
        "vdos",
        "dispersion",
    )

    def recorded_steps(self) -> list[Step]:
        """Steps that have finished before, from their records in ``.pipeline/`` (stage order)."""
        steps = []
        for name in self.ORDER:
            rec = self.runner.records / f"{name}.json"
            if rec.is_file():
                data = json.loads(rec.read_text())
                steps.append(Step(name, data["argv"]))
                self.runner.timings[name] = data.get("wall_s", 0.0)
        return steps

    def write_report(self) -> Path:
        """Assemble ``report.md`` and ``report.html`` from the step folders."""
        from mlff2d.report.pipeline_report import build_report

        rep = build_report(self.recipe, self.rundir, self.steps, self.runner.timings)
        paths = rep.write(self.rundir)
        return paths["html"]


@click.command("run")
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Run folder (default runs/<recipe name>).",
)
@click.option("--force", is_flag=True, help="Run every stage again.")
@click.option("--report-only", is_flag=True, help="Only rebuild the report from the finished stages.")
def run(recipe: Path, output: Path | None, force: bool, report_only: bool) -> None:
    """Run the whole pipeline of RECIPE: data → MACE → LAMMPS → phonons → MD spectra → report.

    Stages whose inputs did not change are skipped; an interrupted stage resumes.
    Example: mlff2d run analysis/wse2_quick.yaml -o runs/demo
    """
    t0 = time.perf_counter()
    pipe = Pipeline(recipe, output or Path("runs") / load_recipe(recipe).name, force=force)
    if report_only:
        pipe.steps = pipe.recorded_steps()
        click.secho(f"report: {pipe.write_report()}", fg="green")
        return
    rec = RunRecord("run", config=to_dict(pipe.recipe), inputs={"recipe": str(recipe)})
    res = pipe.run()
    rec.timings = dict(pipe.runner.timings, total=round(time.perf_counter() - t0, 2))
    rec.outputs = {"report_html": str(res["report"]), "report_md": str(res["report"].with_suffix(".md"))}
    rec.results = {"status": res["status"]}
    write_summary(pipe.rundir, rec)
    click.secho(f"report: {res['report']}", fg="green")
