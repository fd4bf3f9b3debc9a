"""Committees of MACE models: training, export, and an ASE calculator with uncertainties.

A committee is K models trained by ``mlff2d train CONFIG --committee K``: member i is an ordinary
training run (:class:`~mlff2d.training.workflows.TrainWorkflow`) in ``<output>/member_<i>/``,
with the config's seed + i and a bootstrap resample (with replacement, seeded by the member's
seed) of the training split, written as ``member_<i>/train_bootstrap.extxyz``; validation and
test splits are the dataset's. Each member resumes and is reused on its own, so an interrupted
committee trains only what is missing. The committee folder holds ``committee.json`` (the member
models), ``metrics.json`` and the committee mean's errors with the σ_F calibration
(``eval_valid/``, ``eval_test/``, see :mod:`mlff2d.training.uncertainty`).

The spread of the members is the uncertainty: per atom, σ_F = sqrt(mean_k |F_k,i − F̄_i|²)
(eV/Å); for the structure, the standard deviation of the member energies (eV).
:class:`CommitteeCalculator` returns both with the mean energy, forces and stress; the members
are evaluated on one graph (mace-torch's ``MACECalculator`` with several models).

Example
-------
>>> from mlff2d.training.committee import CommitteeCalculator, train_workflow  # doctest: +SKIP
>>> s = TrainSettings("training/wse2_sw_quick.yaml", data="runs/data", committee=4)  # doctest: +SKIP
>>> res = train_workflow(s, "runs/committee").run()  # doctest: +SKIP
>>> atoms.calc = CommitteeCalculator(res.models)  # doctest: +SKIP
>>> atoms.get_forces(), atoms.calc.results["forces_std"]  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from mlff2d.errors import CalculationFailed, InputError, ModelError
from mlff2d.runinfo import RunRecord, atomic_write_text
from mlff2d.training.workflows import (
    ExportResult,
    ExportSettings,
    ExportWorkflow,
    TrainResult,
    TrainSettings,
    TrainWorkflow,
    train_inputs,
)
from mlff2d.workflow import StageResult, Workflow

logger = logging.getLogger(__name__)

#: the committee's list of member models, in its run folder.
COMMITTEE_FILE = "committee.json"
#: the card of an exported committee, in the export folder.
EXPORT_CARD = "committee-lammps.json"
#: each member's bootstrap resample of the training split.
BOOTSTRAP_FILE = "train_bootstrap.extxyz"
#: mace-torch options naming folders that the members would share: refused in a committee.
SHARED_DIR_KEYS = ("model_dir", "checkpoints_dir", "results_dir", "log_dir", "downloads_dir")


def member_dir(outdir: str | Path, i: int) -> Path:
    """Run folder of member ``i`` of the committee in ``outdir``."""
    return Path(outdir) / f"member_{i}"


# -- training -------------------------------------------------------------------------------------


@dataclass
class CommitteeResult(StageResult):
    """A committee of trained models, their errors and the calibration of their spread.

    Attributes
    ----------
    models
        The member models (``member_<i>/<name>.model``), K ≥ 2.
    manifest
        ``committee.json``: the member models, folders and seeds.
    metrics_json
        ``metrics.json``: per-member errors and the committee mean's valid/test errors.
    calibration
        σ_F against the true force error per atom on the test split (else valid), PNG.
    seeds
        mace-torch seed of each member (the bootstrap resample uses the same seed).
    member_test
        Overall test errors of each member (meV/atom, meV/Å, meV/Å³), if a test split exists.
    valid, test
        Overall errors of the committee mean on the valid and test splits.
    uncertainty
        Spearman correlation of σ_F with the per-atom force error, the σ_F threshold (eV/Å) and
        the binned curve, on the test split (else valid); see
        :class:`mlff2d.training.uncertainty.Calibration`.
    """

    models: list[Path]
    manifest: Path
    metrics_json: Path
    calibration: Path | None = None
    seeds: list[int] = field(default_factory=list)
    member_test: list[dict[str, Any] | None] = field(default_factory=list)
    valid: dict[str, Any] | None = None
    test: dict[str, Any] | None = None
    uncertainty: dict[str, Any] | None = None


class CommitteeWorkflow(Workflow[TrainSettings, CommitteeResult]):
    """Train K models (``settings.committee`` ≥ 2), each a :class:`TrainWorkflow` of its own.

    Finished when the committee's own record is (same settings and data) and every member's
    is: a member whose run folder was lost or interrupted is trained again (from its last
    checkpoint), the others are reused. ``force`` retrains every member from scratch.
    """

    command = "train"
    Settings = TrainSettings
    Result = CommitteeResult
    #: the :class:`~mlff2d.training.train.Trainer` of the committee folder, built by :meth:`check`.
    _trainer: Any = None

    def inputs(self) -> dict[str, Path]:
        """The training YAML and the dataset files (those of a single training)."""
        return train_inputs(self.settings)

    def members(self) -> list[TrainWorkflow]:
        """The member workflows: seed + i, the bootstrap file, the dataset's valid/test files."""
        from mlff2d.training.train import read_config

        _, cfg, files = read_config(self.settings)
        seed0 = self.settings.seed if self.settings.seed is not None else _config_seed(self.settings, cfg)
        out = []
        for i in range(self.settings.committee):
            folder = member_dir(self.outdir, i)
            settings = self.settings.replace(
                committee=1,
                seed=seed0 + i,
                data=None,
                train_file=folder / BOOTSTRAP_FILE,
                valid_file=files.valid,
                test_file=files.test,
            )
            out.append(TrainWorkflow(settings, folder, force=self.force, progress=self.progress))
        return out

    def is_finished(self) -> bool:
        """The committee's record matches and every member is finished."""
        return super().is_finished() and all(m.is_finished() for m in self.members())

    def check(self) -> None:
        """A committee of ≥ 2; the config as for one model; no folder shared by the members."""
        from mlff2d.training.train import Trainer

        k = self.settings.committee
        if k < 2:
            raise InputError(
                f"a committee needs at least 2 models, got {k}", "use TrainWorkflow for one model"
            )
        trainer = Trainer(self.settings.replace(committee=1), self.outdir, progress=self.progress)
        shared = [key for key in SHARED_DIR_KEYS if trainer.mace_cfg.get(key)]
        if shared:
            raise InputError(
                f"{self.settings.config}: {', '.join(shared)} would be shared by the committee's members",
                "remove it: each member writes into its own member_<i>/ folder",
            )
        self._trainer = trainer

    def _run(self, record: RunRecord) -> CommitteeResult:
        if self._trainer is None:
            self.check()
        trainer, files = self._trainer, self._trainer.files
        members, results = self.members(), []
        for i, wf in enumerate(members):
            logger.info(
                "committee member %d/%d: %s (seed %s)", i + 1, len(members), wf.outdir, wf.settings.seed
            )
            write_bootstrap(files.train, wf.settings.seed or 0, wf.settings.train_file)  # type: ignore[arg-type]
            results.append(wf.run())
        record.results["member_status"] = [wf.status for wf in members]
        seeds = [int(wf.settings.seed or 0) for wf in members]
        manifest = write_manifest(self.outdir, results, seeds)
        with record.timer("evaluate"):
            evals = trainer.evaluate(self.outdir, trainer.mace_cfg)
        metrics = {
            "size": len(results),
            "seeds": seeds,
            "members": [_member_entry(r, self.outdir) for r in results],
            **evals,
        }
        atomic_write_text(self.outdir / "metrics.json", json.dumps(metrics, indent=2))
        split = "test" if "test" in evals else "valid"
        figure = self.outdir / f"eval_{split}" / "calibration.png"
        return CommitteeResult(
            outdir=self.outdir,
            models=[r.model for r in results],
            manifest=manifest,
            metrics_json=self.outdir / "metrics.json",
            calibration=figure if figure.is_file() else None,
            seeds=seeds,
            member_test=[r.test for r in results],
            valid=(evals.get("valid") or {}).get("overall"),
            test=(evals.get("test") or {}).get("overall"),
            uncertainty=(evals.get(split) or {}).get("uncertainty"),
        )

    @classmethod
    def load(cls, outdir: str | Path) -> CommitteeResult:
        """The result of a finished committee folder (an error naming it for a single model)."""
        committee_models(outdir)
        return super().load(outdir)  # type: ignore[return-value]


def train_workflow(
    settings: TrainSettings, outdir: str | Path, *, force: bool = False, progress: bool = True
) -> TrainWorkflow | CommitteeWorkflow:
    """The workflow of ``mlff2d train``: one model, or a committee when ``settings.committee`` ≥ 2."""
    cls = CommitteeWorkflow if settings.committee > 1 else TrainWorkflow
    return cls(settings, outdir, force=force, progress=progress)


def _config_seed(settings: TrainSettings, cfg: dict[str, Any]) -> int:
    """The config's mace-torch seed (mace-torch's default when the YAML has none)."""
    if cfg.get("seed") is not None:
        return int(cfg["seed"])
    from mlff2d.training.train import parse_mace_args

    return int(parse_mace_args(settings.config, str(settings.config)).seed)


def bootstrap_indices(n: int, seed: int) -> np.ndarray:
    """``n`` indices drawn from ``range(n)`` with replacement (sorted), reproducible by ``seed``."""
    return np.sort(np.random.default_rng(seed).integers(0, n, size=n))


def write_bootstrap(train_file: str | Path, seed: int, path: str | Path) -> Path:
    """Write a bootstrap resample of the structures of ``train_file`` (extxyz) to ``path``.

    The file is left untouched when it already holds this resample (so a finished member that
    used it stays finished).
    """
    from ase.io import read, write

    frames = read(train_file, index=":", format="extxyz")
    buf = io.StringIO()
    write(buf, [frames[i] for i in bootstrap_indices(len(frames), seed)], format="extxyz")
    out = Path(path)
    if not (out.is_file() and out.read_text() == buf.getvalue()):
        atomic_write_text(out, buf.getvalue())
    return out


def write_manifest(outdir: Path, members: list[TrainResult], seeds: list[int]) -> Path:
    """Write ``committee.json`` (member models relative to ``outdir``, folders and seeds)."""
    root = outdir.resolve()
    data = {
        "size": len(members),
        "models": [str(r.model.resolve().relative_to(root)) for r in members],
        "members": [str(Path(r.outdir).resolve().relative_to(root)) for r in members],
        "seeds": seeds,
        "bootstrap": BOOTSTRAP_FILE,
    }
    path = outdir / COMMITTEE_FILE
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path


def _member_entry(res: TrainResult, root: Path) -> dict[str, Any]:
    return {
        "folder": str(Path(res.outdir).resolve().relative_to(root.resolve())),
        "model": res.model.name,
        "valid": res.valid,
        "test": res.test,
    }


def is_committee(path: str | Path) -> bool:
    """True if ``path`` is a folder holding a committee (its ``committee.json``)."""
    return (Path(path) / COMMITTEE_FILE).is_file()


def committee_models(folder: str | Path) -> list[Path]:
    """The member model files of the committee in ``folder`` (from its ``committee.json``).

    Raises
    ------
    InputError
        If ``folder`` holds no committee, or a member model is missing.
    """
    d = Path(folder)
    if not is_committee(d):
        raise InputError(
            f"{d} holds no committee of models ({COMMITTEE_FILE} missing)",
            f"train one with `mlff2d train CONFIG --committee K -o {d}`, or pass a model file",
        )
    models = [d / m for m in json.loads((d / COMMITTEE_FILE).read_text())["models"]]
    missing = [str(m) for m in models if not m.is_file()]
    if missing:
        raise InputError(
            f"{d}: member model {missing[0]} is missing",
            f"run `mlff2d train CONFIG --committee {len(models)} -o {d}` again",
        )
    return models


def committee_inputs(folder: str | Path) -> dict[str, Path]:
    """The member models of a committee folder as workflow inputs (``model_<i>``)."""
    return {f"model_{i}": m for i, m in enumerate(committee_models(folder))}


def load_members(paths: Sequence[str | Path], device: str = "cpu") -> list[Any]:
    """Load the member models and check they agree on elements and cut-off.

    Raises
    ------
    ModelError
        A file is not a MACE model, or the members differ in elements or ``r_max``.
    """
    from mlff2d.training.data import load_model, model_elements

    models = [load_model(p, device) for p in paths]
    ref = (model_elements(models[0]), float(models[0].r_max))
    for p, m in zip(paths[1:], models[1:], strict=True):
        if (model_elements(m), float(m.r_max)) != ref:
            raise ModelError(
                f"committee member {p} differs from {paths[0]} in elements or r_max",
                "a committee's members must share elements and cut-off",
            )
    return models


# -- export ---------------------------------------------------------------------------------------


@dataclass
class CommitteeExportResult(StageResult):
    """Every member of a committee exported for LAMMPS, with a card listing them.

    Attributes
    ----------
    lammps_models
        ``member_<i>/<name>.model-lammps.pt``, one per member.
    sidecars
        The members' JSON cards.
    card
        ``committee-lammps.json``: size, member files (relative), elements, dtype, r_max, and the
        committee's ``pair_coeff`` line.
    pair_coeff
        The LAMMPS ``pair_coeff`` line of the committee (``pair_style mace``: every member file,
        relative to the export folder, then the elements).
    pair_coeffs
        The ``pair_coeff`` line of each member.
    elements
        Element symbols in LAMMPS type order (the same for every member).
    dtype
        The exported precision.
    r_max
        Cut-off radius (Å).
    num_interactions
        Message-passing layers.
    """

    lammps_models: list[Path]
    sidecars: list[Path]
    card: Path
    pair_coeff: str = ""
    pair_coeffs: list[str] = field(default_factory=list)
    elements: list[str] = field(default_factory=list)
    dtype: str = "float64"
    r_max: float = 0.0
    num_interactions: int = 0


class CommitteeExportWorkflow(Workflow[ExportSettings, CommitteeExportResult]):
    """Export every member of a committee folder (an :class:`ExportWorkflow` each) and a card."""

    command = "export"
    Settings = ExportSettings
    Result = CommitteeExportResult

    def inputs(self) -> dict[str, Path]:
        """The member model files."""
        return committee_inputs(self.settings.model)

    def check(self) -> None:
        """The model argument is a committee folder with every member model present."""
        committee_models(self.settings.model)

    def _run(self, record: RunRecord) -> CommitteeExportResult:
        models = committee_models(self.settings.model)
        res: list[ExportResult] = []
        for i, m in enumerate(models):
            wf = ExportWorkflow(self.settings.replace(model=m), member_dir(self.outdir, i), force=self.force)
            res.append(wf.run())
        if any(r.elements != res[0].elements for r in res):
            raise CalculationFailed(
                f"the members of {self.settings.model} export different LAMMPS element orders",
                "check their training data",
            )
        root = self.outdir.resolve()
        members = [str(r.lammps_model.resolve().relative_to(root)) for r in res]
        pair_coeff = f"pair_coeff * * {' '.join(members)} {' '.join(res[0].elements)}"
        card = {
            "size": len(res),
            "members": members,
            "pair_coeff": pair_coeff,
            "sidecars": [str(r.sidecar.resolve().relative_to(root)) for r in res],
            "source_models": [str(m) for m in models],
            "elements": res[0].elements,
            "dtype": res[0].dtype,
            "r_max": res[0].r_max,
            "num_interactions": res[0].num_interactions,
        }
        atomic_write_text(self.outdir / EXPORT_CARD, json.dumps(card, indent=2) + "\n")
        return CommitteeExportResult(
            outdir=self.outdir,
            lammps_models=[r.lammps_model for r in res],
            sidecars=[r.sidecar for r in res],
            card=self.outdir / EXPORT_CARD,
            pair_coeff=pair_coeff,
            pair_coeffs=[r.pair_coeff for r in res],
            elements=res[0].elements,
            dtype=res[0].dtype,
            r_max=res[0].r_max,
            num_interactions=res[0].num_interactions,
        )


def export_workflow(
    settings: ExportSettings, outdir: str | Path, *, force: bool = False
) -> ExportWorkflow | CommitteeExportWorkflow:
    """The workflow of ``mlff2d export``: one model file, or every member of a committee folder."""
    cls = CommitteeExportWorkflow if settings.model.is_dir() else ExportWorkflow
    return cls(settings, outdir, force=force)


# -- ASE calculator -------------------------------------------------------------------------------


class CommitteeCalculator(Calculator):
    """ASE calculator of a committee: the mean of the members, and their spread.

    ``results`` holds ``energy`` (eV), ``free_energy``, ``forces`` (eV/Å, shape (N, 3)) and
    ``stress`` (eV/Å³, Voigt) of the member mean, plus

    - ``energy_std``: standard deviation of the member energies (eV);
    - ``forces_std``: σ_F per atom, sqrt(mean_k |F_k,i − F̄_i|²) (eV/Å, shape (N,));
    - ``energies_members``: the member energies (eV, shape (K,));
    - ``forces_members``: the member forces (eV/Å, shape (K, N, 3)) if ``keep_members``.

    The graph (neighbour list) is built once and every member runs on it (mace-torch's
    ``MACECalculator`` with several models).

    Parameters
    ----------
    models
        Member model files (``*.model``), or a committee folder from ``mlff2d train --committee``.
    device
        ``"cpu"`` or ``"cuda"``.
    dtype
        Precision of the evaluation.
    head
        Head of multi-head members.
    keep_members
        Also return ``forces_members``.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energy_std", "forces_std"]

    def __init__(
        self,
        models: str | Path | Sequence[str | Path],
        device: str = "cpu",
        dtype: str = "float64",
        head: str | None = None,
        keep_members: bool = False,
        **kwargs: Any,
    ) -> None:
        from mlff2d.training.calculator import calculator

        super().__init__(**kwargs)
        if isinstance(models, (str, Path)):
            paths = committee_models(models) if Path(models).is_dir() else [Path(models)]
        else:
            paths = [Path(m) for m in models]
        if len(paths) < 2:
            raise InputError(
                f"a committee needs at least 2 models, got {len(paths)}", "give K ≥ 2 model files"
            )
        self.models = paths
        self.keep_members = keep_members
        self._mace = calculator(paths, device=device, dtype=dtype, head=head)  # type: ignore[arg-type]

    def calculate(
        self, atoms: Any = None, properties: Sequence[str] = ("energy",), system_changes: Any = all_changes
    ) -> None:
        """Evaluate every member on one graph of ``atoms``; fill :attr:`results`."""
        from mlff2d.training.uncertainty import forces_std

        super().calculate(atoms, properties, system_changes)
        self._mace.calculate(self.atoms, list(properties), system_changes)
        r = self._mace.results
        energies, forces = np.asarray(r["energy_comm"]), np.asarray(r["forces_comm"])
        self.results = {
            "energy": float(r["energy"]),
            "free_energy": float(r["energy"]),
            "forces": np.asarray(r["forces"]),
            "energy_std": float(np.std(energies)),
            "forces_std": forces_std(forces),
            "energies_members": energies,
        }
        if r.get("stress") is not None:
            self.results["stress"] = np.asarray(r["stress"])
        if self.keep_members:
            self.results["forces_members"] = forces
