"""The active-learning loop as a workflow: ``mlff2d learn RECIPE -o FOLDER``.

A learning recipe (``training/learn/*.yaml``) names a starting dataset, a mace-torch config, the
reference calculator (the oracle) and the cells to explore::

    name: wse2_sw_learn
    calculator: sw                  # any calculator of `mlff2d label`
    profile: null                   # its settings YAML (DFT)
    dataset: training/learn/wse2_sw_start.yaml   # a dataset recipe, or a `mlff2d dataset` folder
    train_config: training/wse2_sw_quick.yaml
    committee: 4                    # K models per iteration
    threshold: 0.15                 # σ_F (eV/Å) above which a frame is worth a label
    frames_per_iteration: 20
    max_iterations: 4
    candidates: {defects: [V_Se, V_W], temperatures: [300, 600], strains: [-0.02, 0.0, 0.02]}
    target: {defect: V_Se, supercell: [12, 12], temperature: 600, steps: 60}
    holdout: {frames: 4}            # oracle-labelled MD frames of the target cell (or `file:`)

Iteration ``i`` (folder ``iter_<iii>/``) trains a committee on its ``train.extxyz``, measures the
committee mean's errors on the holdout, runs MD of the target cell with the committee and stops
the loop when its largest σ_F stays under the threshold. Otherwise it runs MD of every candidate
cell, keeps the frames whose largest σ_F exceeds the threshold, picks at most
``frames_per_iteration`` of them by farthest-point sampling, labels them with the oracle through a
label store and appends them to the next iteration's training split (valid and test stay those of
the starting dataset). See :mod:`mlff2d.learning.loop`.

Every sub-step is a workflow or a cached file of its own, so an interrupted loop resumes where it
stopped and a finished one is reused. This module imports no heavy library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mlff2d.errors import InputError
from mlff2d.runinfo import RunRecord
from mlff2d.settings import Settings, setting
from mlff2d.workflow import StageResult, Workflow


@dataclass
class CandidateCells(Settings):
    """The cells explored by MD in every iteration: defects × temperatures × strains.

    Attributes
    ----------
    defects
        Defect names (``V_Se``, ``V_W``, ...); ``pristine`` for a cell without defect.
    temperatures
        Langevin MD temperatures (K).
    strains
        Biaxial strains (fraction).
    supercell
        In-plane size of the candidate cells: small enough for the oracle to label.
    steps
        MD steps per cell.
    interval
        Steps between the recorded frames.
    """

    defects: list[str] = setting(["V_Se", "V_Se2", "V_W"], "Defects of the candidate cells.")
    temperatures: list[float] = setting([300.0, 600.0], "MD temperatures.", unit="K", gt=0)
    strains: list[float] = setting([-0.02, 0.0, 0.02], "Biaxial strains.", ge=-0.2, le=0.2)
    supercell: tuple[int, int] = setting((4, 4), "In-plane size of the candidate cells.", ge=1)
    steps: int = setting(200, "MD steps per candidate cell.", ge=1)
    interval: int = setting(10, "Steps between recorded frames.", ge=1)


@dataclass
class TargetCell(Settings):
    """The cell whose MD decides when the loop stops.

    Attributes
    ----------
    defect
        Defect name, or ``pristine``.
    supercell
        In-plane size (12 × 12 by default: an isolated defect).
    temperature
        Langevin MD temperature (K).
    strain
        Biaxial strain (fraction).
    steps, interval
        MD steps, and steps between the frames whose σ_F is recorded.
    engine
        ``ase``: Langevin MD in ASE with the
        :class:`~mlff2d.training.committee.CommitteeCalculator`; ``lammps``: the committee
        exported (``iter_<iii>/export/``) and run by ``pair_style mace`` with every member
        (``lammps_inputs/in.wse2_committee``; velocities drawn at 2T, no ``sigma_stop``).
    """

    defect: str = setting("V_Se", "Defect of the target cell, or pristine.")
    supercell: tuple[int, int] = setting((12, 12), "In-plane size of the target cell.", ge=1)
    temperature: float = setting(600.0, "MD temperature of the target cell.", unit="K", gt=0)
    strain: float = setting(0.0, "Biaxial strain of the target cell.", ge=-0.2, le=0.2)
    steps: int = setting(100, "MD steps of the target cell.", ge=1)
    interval: int = setting(5, "Steps between the recorded frames.", ge=1)
    engine: Literal["ase", "lammps"] = setting(
        "ase", "MD engine: ASE with the committee calculator, or LAMMPS with the committee plugin."
    )


@dataclass
class Holdout(Settings):
    """The oracle-labelled frames that measure the committee's true error.

    Attributes
    ----------
    file
        A labelled extxyz (``REF_energy``, ``REF_forces``); else frames are made:
    frames
        SW-MD snapshots of the target cell (at its temperature and strain), labelled by the
        oracle through ``mlff2d dataset`` (folder ``holdout/``).
    interval
        SW-MD steps (1 fs) between the snapshots.
    """

    file: Path | None = setting(None, "Labelled extxyz holdout (else frames of the target cell).")
    frames: int = setting(4, "Oracle-labelled MD frames of the target cell.", ge=1)
    interval: int = setting(40, "SW-MD steps between the holdout frames.", ge=1)


@dataclass
class LearnRecipe(Settings):
    """A learning recipe (see the module docstring); relative paths are from the working folder.

    Attributes
    ----------
    name
        Name of the recipe.
    material
        Formula of the host (``WSe2``).
    calculator, profile
        The oracle: a calculator of ``mlff2d label`` and its settings YAML.
    dataset
        The starting dataset: a dataset recipe YAML (built into ``data/``) or a dataset folder.
    train_config
        mace-torch training YAML of every committee member.
    committee
        Models per committee (K ≥ 2).
    threshold
        σ_F threshold (eV/Å): frames above it are labelled; the loop stops when the target MD
        stays under it.
    frames_per_iteration
        At most this many frames labelled per iteration.
    max_iterations
        Labelling rounds at most (committees trained: at most ``max_iterations + 1``).
    sigma_stop
        A candidate MD stops when its largest σ_F exceeds this (eV/Å): the model has left
        the region where its trajectory means anything.
    timestep, friction
        Langevin MD time step (fs) and friction (1/fs).
    vacuum
        Vacuum of the built cells (Å).
    seed
        Seed of the MD velocities and noise.
    candidates, target, holdout
        See :class:`CandidateCells`, :class:`TargetCell`, :class:`Holdout`.
    """

    name: str = setting(help="Name of the recipe.")
    dataset: Path = setting(help="Starting dataset: a dataset recipe YAML or a dataset folder.")
    train_config: Path = setting(help="mace-torch training YAML of the committee members.")
    material: str = setting("WSe2", "Formula of the host.")
    calculator: str = setting("sw", "Oracle: a calculator of `mlff2d label`.")
    profile: Path | None = setting(None, "Settings YAML of the oracle (DFT).")
    committee: int = setting(4, "Models per committee.", ge=2)
    threshold: float = setting(0.15, "σ_F above which a frame is labelled.", unit="eV/Å", gt=0)
    frames_per_iteration: int = setting(20, "Frames labelled per iteration at most.", ge=1)
    max_iterations: int = setting(4, "Labelling rounds at most.", ge=0)
    sigma_stop: float = setting(1.0, "A candidate MD stops above this σ_F.", unit="eV/Å", gt=0)
    timestep: float = setting(1.0, "MD time step.", unit="fs", gt=0)
    friction: float = setting(0.01, "Langevin friction.", unit="1/fs", gt=0)
    vacuum: float = setting(20.0, "Vacuum of the built cells.", unit="Å", ge=15)
    seed: int = setting(0, "Seed of the MD.", ge=0)
    candidates: CandidateCells = field(default_factory=CandidateCells)
    target: TargetCell = field(default_factory=TargetCell)
    holdout: Holdout = field(default_factory=Holdout)


def load_learn_recipe(path: str | Path) -> LearnRecipe:
    """Read a learning recipe; unknown keys and bad values are errors naming file and key."""
    from mlff2d.config import load_yaml

    return LearnRecipe.from_mapping(load_yaml(path), str(path))


@dataclass
class LearnSettings(Settings):
    """Settings of ``mlff2d learn``.

    Attributes
    ----------
    recipe
        Learning recipe YAML (``training/learn/*.yaml``).
    store
        Label store of the oracle (default ``<output>/labels``); share one to reuse labels.
    """

    recipe: Path = setting(help="Learning recipe YAML.", argument=True)
    store: Path | None = setting(None, "Label store of the oracle (default OUTPUT/labels).")


@dataclass
class LearnResult(StageResult):
    """The outcome of an active-learning loop.

    Attributes
    ----------
    dataset
        The last iteration's training split (extxyz), with every label the loop added.
    model
        The last committee's folder (``iter_<iii>/committee``).
    history
        ``learning.json``: one record per iteration (see :mod:`mlff2d.learning.loop`).
    curve
        ``learning_curve.png``: holdout force error and target max σ_F against the iteration.
    iterations
        Committees trained.
    converged
        True if the target MD's largest σ_F fell under the threshold.
    stop
        Why the loop ended: ``converged``, ``max_iterations`` (the budget), or ``nothing_added``
        (no candidate frame above the threshold, or every label failed).
    added
        Frames added to the training split, per ``config_type``.
    holdout_forces_rmse, holdout_energy_rmse
        Holdout errors of each iteration's committee mean (meV/Å, meV/atom).
    target_sigma_max
        Largest σ_F of each iteration's target MD (eV/Å).
    """

    dataset: Path
    model: Path
    history: Path
    curve: Path
    iterations: int = 0
    converged: bool = False
    stop: str = ""
    added: dict[str, int] = field(default_factory=dict)
    holdout_forces_rmse: list[float] = field(default_factory=list)
    holdout_energy_rmse: list[float] = field(default_factory=list)
    target_sigma_max: list[float] = field(default_factory=list)

    def describe(self) -> str:
        """One line: iterations, stop reason, frames added, first and last holdout force error."""
        why = "target σ_F under the threshold" if self.converged else self.stop.replace("_", " ")
        added = ", ".join(f"{v} {k}" for k, v in sorted(self.added.items())) or "none"
        f = self.holdout_forces_rmse
        err = f"; holdout force RMSE {f[0]:.0f} -> {f[-1]:.0f} meV/Å" if f else ""
        return f"{self.iterations} iterations ({why}); frames added: {added}{err}"


class LearnWorkflow(Workflow[LearnSettings, LearnResult]):
    """Committee → MD of candidate cells → σ_F selection → oracle labels → retrain, repeated.

    Each iteration composes finished workflows (dataset, committee training, evaluation) and
    cached files (MD σ_F traces, candidate and selected frames, labels in the store), so a rerun
    after an interruption repeats nothing that was finished.
    """

    command = "learn"
    Settings = LearnSettings
    Result = LearnResult

    def recipe(self) -> LearnRecipe:
        """The learning recipe of the settings."""
        return load_learn_recipe(self.settings.recipe)

    def inputs(self) -> dict[str, Path]:
        """The recipe and every file it names (dataset, mace-torch config, profile, holdout)."""
        r = self.recipe()
        out = {"recipe": self.settings.recipe, "dataset": r.dataset, "train_config": r.train_config}
        if r.profile is not None:
            out["profile"] = r.profile
        if r.holdout.file is not None:
            out["holdout"] = r.holdout.file
        if r.dataset.is_dir():  # a dataset folder stands for its split files
            out.update({f"dataset_{s}": r.dataset / f"{s}.extxyz" for s in ("train", "valid", "test")})
        return {k: v for k, v in out.items() if v.exists()}

    def check(self) -> None:
        """Check the recipe, its files, the oracle and the cells before anything is written.

        Raises
        ------
        InputError
            Naming the recipe key and the value.
        """
        from mlff2d.learning.loop import check_recipe

        check_recipe(self.recipe(), str(self.settings.recipe))
        store = self.settings.store
        if store is not None and store.exists() and not store.is_dir():
            raise InputError(f"--store: {store} is a file, not a label store folder", "give a folder")

    def _run(self, record: RunRecord) -> LearnResult:
        from mlff2d.learning.loop import run_loop

        store = self.settings.store or self.outdir / "labels"
        return run_loop(self.recipe(), self.outdir, store, record, progress=self.progress)


def summary_line(res: LearnResult) -> str:
    """What ``mlff2d learn`` prints: the outcome and where the figure is."""
    return f"{res.describe()}; {res.history.name}, {res.curve.name} in {res.outdir}"
