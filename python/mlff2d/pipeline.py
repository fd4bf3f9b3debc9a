"""The end-to-end pipeline: ``mlff2d run analysis/<recipe>.yaml -o runs/<name>``.

The pipeline calls the stage workflows directly (the same objects that the ``mlff2d`` commands run),
one sub-folder of the run folder each, and passes their typed results on: the model path of the
training result goes into the export settings, the trajectory of the MD result into the VDOS
settings, and so on. Each workflow decides by itself whether its folder already holds a finished
result for the same settings and inputs (:meth:`mlff2d.workflow.Workflow.is_finished`), so running
again right after is a no-op, and an interrupted stage resumes from its own cache (label store,
training checkpoints, displacement forces, MD restart files).

A recipe has one section per stage whose keys are the fields of that stage's settings dataclass
(the same names as the command's options, with the same defaults); the keys that the pipeline fills
from earlier stages (model, data, trajectory, ...) are refused in the recipe.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import click

from mlff2d.config import load_yaml, to_dict
from mlff2d.errors import ConfigError
from mlff2d.runinfo import RunRecord, write_summary
from mlff2d.settings import Settings, from_mapping
from mlff2d.workflow import StageResult, Workflow

logger = logging.getLogger(__name__)

StageName = Literal["md", "vdos", "dispersion"]


@dataclass
class DatasetSection:
    """Where the data comes from: a dataset recipe, or existing extxyz files.

    Attributes
    ----------
    recipe
        A dataset recipe YAML (``training/datasets/*.yaml``), run by the ``dataset`` stage.
    store
        Label store for the recipe (e.g. the shipped DFT store), default ``<run>/data/labels``.
    train, valid, test
        Existing extxyz files instead of a recipe.
    """

    recipe: Path | None = None
    store: Path | None = None
    train: Path | None = None
    valid: Path | None = None
    test: Path | None = None


@dataclass
class ReferenceSection:
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

    calculator: Literal["sw", "file"] = "sw"
    phonons: Path | None = None
    label: str = "SW teacher"


#: stage section -> keys the pipeline fills from earlier stages (refused in a recipe).
FILLED: dict[str, tuple[str, ...]] = {
    "train": ("data", "train_file", "valid_file", "test_file"),
    "evaluate": ("model", "data"),
    "export": ("model",),
    "phonons": ("structure", "calculator", "model"),
    "md": ("material", "pair", "model"),
    "vdos": ("trajectory", "structure", "harmonic"),
    "dispersion": ("trajectory", "structure", "harmonic"),
}


@dataclass
class Recipe:
    """An analysis recipe (``analysis/*.yaml``): the whole pipeline's settings.

    Attributes
    ----------
    name
        Run name (default run folder ``runs/<name>``).
    material
        Formula of the 2H MX2 monolayer (``WSe2``, ``MoS2``, ...).
    description
        One paragraph for the report.
    skip
        Stages not to run (``md``, ``vdos``, ``dispersion``).
    dataset, reference
        Data source and reference phonons.
    train, evaluate, export, phonons, md, vdos, dispersion
        Each the settings of that stage (keys and defaults of its ``mlff2d`` command), without the
        keys the pipeline fills (:data:`FILLED`).
    """

    name: str
    material: str = "WSe2"
    description: str = ""
    skip: list[StageName] = field(default_factory=list)
    dataset: DatasetSection = field(default_factory=DatasetSection)
    reference: ReferenceSection = field(default_factory=ReferenceSection)
    train: dict[str, Any] = field(default_factory=dict)
    evaluate: dict[str, Any] = field(default_factory=dict)
    export: dict[str, Any] = field(default_factory=dict)
    phonons: dict[str, Any] = field(default_factory=dict)
    md: dict[str, Any] = field(default_factory=dict)
    vdos: dict[str, Any] = field(default_factory=dict)
    dispersion: dict[str, Any] = field(default_factory=dict)


def _workflows() -> dict[str, type[Workflow]]:
    """Section name -> workflow class (imported here: the classes import no heavy library)."""
    from mlff2d.dynamics.workflow import DispersionWorkflow, VDOSWorkflow
    from mlff2d.lammps.workflow import MDWorkflow
    from mlff2d.phonons.stage import PhononsWorkflow
    from mlff2d.training.workflows import EvaluateWorkflow, ExportWorkflow, TrainWorkflow

    return {
        "train": TrainWorkflow,
        "evaluate": EvaluateWorkflow,
        "export": ExportWorkflow,
        "phonons": PhononsWorkflow,
        "md": MDWorkflow,
        "vdos": VDOSWorkflow,
        "dispersion": DispersionWorkflow,
    }


def section_settings(recipe: Recipe, section: str, where: str, **filled: Any) -> Settings:
    """The settings of stage ``section``: the recipe's keys, then the values filled by the pipeline.

    Raises
    ------
    ConfigError
        If the recipe sets a key that the pipeline fills, or a key or value is invalid.
    """
    data = dict(getattr(recipe, section))
    own = [k for k in data if k.replace("-", "_") in FILLED.get(section, ())]
    if own:
        raise ConfigError(
            f"{where}: {section}: '{own[0]}' is filled by the pipeline from an earlier stage",
            f"remove '{own[0]}' from the {section} section",
        )
    cls = _workflows()[section].Settings
    return cls.from_mapping({**data, **filled}, where=f"{where}: {section}")


def load_recipe(path: str | Path) -> Recipe:
    """Read an analysis recipe; unknown keys and invalid values are errors naming the key."""
    recipe = from_mapping(Recipe, load_yaml(path), where=str(path))
    if not recipe.dataset.recipe and not recipe.dataset.train:
        raise ConfigError(f"{path}: dataset needs a recipe or train/valid/test files")
    if recipe.dataset.train and not recipe.dataset.test:
        raise ConfigError(f"{path}: dataset: a test file is needed with train", "add dataset.test")
    if recipe.reference.calculator == "file" and not recipe.reference.phonons:
        raise ConfigError(f"{path}: reference.phonons is needed with calculator: file")
    _check_sections(recipe, str(path))
    return recipe


def _check_sections(recipe: Recipe, where: str) -> None:
    """Build every section's settings with placeholders for the filled keys, to fail early."""
    names = {"structure": recipe.material, "material": recipe.material, "calculator": "mace", "pair": "mace"}
    for section, keys in FILLED.items():
        section_settings(recipe, section, where, **{k: names.get(k, Path("placeholder")) for k in keys})


# -- running -------------------------------------------------------------------------------------


@dataclass
class StageRun:
    """One stage of a pipeline run: its workflow and (once run or reused) its typed result."""

    name: str
    workflow: Workflow
    result: StageResult | None = None


class Pipeline:
    """Builds the stage workflows of a recipe in a run folder, runs them, then writes the report.

    Parameters
    ----------
    recipe_path
        The analysis recipe YAML.
    rundir
        The run folder (one sub-folder per stage).
    force
        Run every stage again.
    """

    def __init__(self, recipe_path: str | Path, rundir: str | Path, force: bool = False) -> None:
        self.recipe_path = Path(recipe_path)
        self.recipe = load_recipe(self.recipe_path)
        self.rundir = Path(rundir)
        self.force = force
        self.stages: list[StageRun] = []
        #: only reuse finished stages, compute nothing (``--report-only``).
        self.finished_only = False

    def _stage(self, name: str, workflow: Workflow) -> StageResult | None:
        """Run (or reuse) one stage; ``None`` when only finished stages are wanted and it is not."""
        workflow.force = self.force
        if self.finished_only and not workflow.is_finished():
            return None
        click.secho(f"[{name}] {workflow.command_line()}", bold=True, err=True)
        result = workflow.run()
        if workflow.status == "reused":
            click.echo(f"[{name}] finished before with the same settings and inputs, reused", err=True)
        self.stages.append(StageRun(name, workflow, result))
        return result

    def _settings(self, section: str, **filled: Any) -> Settings:
        return section_settings(self.recipe, section, str(self.recipe_path), **filled)

    def data(self) -> StageResult | None:
        """The dataset stage (or the recipe's existing files, as a result without a stage)."""
        from mlff2d.labeling.workflow import DatasetResult, DatasetWorkflow

        ds = self.recipe.dataset
        if ds.recipe:
            settings = DatasetWorkflow.Settings(recipe=ds.recipe, store=ds.store)
            return self._stage("data", DatasetWorkflow(settings, self.rundir / "data"))
        return DatasetResult(outdir=Path(ds.train).parent, train=ds.train, valid=ds.valid, test=ds.test)

    def run(self) -> Path | None:
        """Run every stage (reusing finished ones) and write the report; return the report page."""
        wf, r, run = _workflows(), self.recipe, self.rundir
        run.mkdir(parents=True, exist_ok=True)
        data = self.data()
        if data is None:
            return self.report()
        model = self._stage(
            "model",
            wf["train"](
                self._settings("train", train_file=data.train, valid_file=data.valid, test_file=data.test),
                run / "model",
            ),
        )
        if model is None:
            return self.report()
        self._stage(
            "evaluate",
            wf["evaluate"](self._settings("evaluate", model=model.model, data=data.test), run / "evaluate"),
        )
        export = self._stage(
            "export", wf["export"](self._settings("export", model=model.model), run / "export")
        )
        student = self._phonons(model.model)
        if export is not None and "md" not in r.skip:
            self._md(export.lammps_model, student)
        return self.report()

    def _phonons(self, model: Path) -> StageResult | None:
        """Reference phonons (SW) or the recipe's file, the student's phonons, their comparison."""
        from mlff2d.phonons.stage import CompareSettings, CompareWorkflow, PhononsWorkflow

        r, run = self.recipe, self.rundir
        student_settings = self._settings("phonons", structure=r.material, calculator="mace", model=model)
        if r.reference.calculator == "sw":
            ref_settings = student_settings.replace(
                calculator="sw", model=None, defect=None, defect_structure=None, engine="auto"
            )
            ref = self._stage("phonons_reference", PhononsWorkflow(ref_settings, run / "phonons_reference"))
            reference = ref.outdir if ref is not None else None
        else:
            reference = r.reference.phonons
        student = self._stage("phonons", PhononsWorkflow(student_settings, run / "phonons"))
        if student is not None and reference is not None:
            cmp = CompareSettings(
                a=reference, b=student.outdir, label_a=r.reference.label, label_b="MACE student"
            )
            self._stage("validation", CompareWorkflow(cmp, run / "validation"))
        return student

    def _md(self, lammps_model: Path, phonons: StageResult | None) -> None:
        """MD of the defect cell with the plugin, then its VDOS and dispersion."""
        wf, r, run = _workflows(), self.recipe, self.rundir
        md = self._stage(
            "md",
            wf["md"](self._settings("md", material=r.material, pair="mace", model=lammps_model), run / "md"),
        )
        if md is None or md.trajectory is None:
            return
        traj = {"trajectory": md.trajectory, "structure": md.structure}
        ph = phonons
        if "vdos" not in r.skip:
            # the harmonic DOS of the same defect cell (and its local PDOS shells), if phonons made it
            same = ph is not None and ph.defect is not None and self._same_cell(md.structure, ph.defect)
            harmonic = ph.outdir if same else None
            self._stage("vdos", wf["vdos"](self._settings("vdos", harmonic=harmonic, **traj), run / "vdos"))
        if "dispersion" not in r.skip:
            harmonic = ph.pristine.phonopy_params if ph is not None else None
            self._stage(
                "dispersion",
                wf["dispersion"](self._settings("dispersion", harmonic=harmonic, **traj), run / "dispersion"),
            )

    @staticmethod
    def _same_cell(md_structure: Path, defect: StageResult) -> bool:
        """True if the MD cell has as many atoms as the phonon defect cell (same recipe cell)."""
        from ase.io import read

        return len(read(md_structure)) == len(read(defect.relaxed))

    def report(self) -> Path:
        """Write the report of the stages run so far; return ``report.html``."""
        from mlff2d.report.workflow import ReportSettings, ReportWorkflow

        settings = ReportSettings(recipe=self.recipe_path, stages=[s.name for s in self.stages])
        wf = ReportWorkflow(settings, self.rundir / "report", stages=self.stages, recipe=self.recipe)
        wf.force = True  # seconds; always reflects the stages of this run
        return wf.run().html


def stage_table(stages: list[StageRun]) -> dict[str, dict[str, Any]]:
    """Status, wall time and command of each stage, for the run's ``summary.yaml``."""
    return {
        s.name: {
            "status": s.workflow.status,
            "wall_s": s.workflow.wall_s,
            "command": s.workflow.command_line(),
        }
        for s in stages
    }


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

    Stages whose settings and inputs did not change are reused; an interrupted stage resumes.
    Example: mlff2d run analysis/wse2_quick.yaml -o runs/demo
    """
    t0 = time.perf_counter()
    pipe = Pipeline(recipe, output or Path("runs") / load_recipe(recipe).name, force=force)
    pipe.finished_only = report_only
    report = pipe.run()
    rec = RunRecord("run", config=to_dict(pipe.recipe), inputs={"recipe": str(recipe)})
    table = stage_table(pipe.stages)
    rec.timings = {name: row["wall_s"] for name, row in table.items()}
    rec.timings["total"] = round(time.perf_counter() - t0, 2)
    rec.outputs = {"report_html": str(report), "report_md": str(report.with_suffix(".md"))}
    rec.results = {"status": {name: row["status"] for name, row in table.items()}}
    write_summary(pipe.rundir, rec, extra={"stages": table})
    click.secho(f"report: {report}", fg="green")
