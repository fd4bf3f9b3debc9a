"""The training stages as workflows: ``train``, ``evaluate``, ``export``.

Settings, typed results and :class:`~mlff2d.workflow.Workflow` classes of the three stages. This
module imports no heavy library (the commands build their options from it); the work is done by
:mod:`.train` (mace-torch), :mod:`.evaluate` and :mod:`.export`, imported when a stage runs.

Example
-------
>>> from mlff2d.training.workflows import TrainSettings, TrainWorkflow  # doctest: +SKIP
>>> res = TrainWorkflow(TrainSettings("training/wse2_sw_quick.yaml", data="runs/data"), "runs/model").run()
>>> res.model, res.metrics["test"]["overall"]["forces"]["rmse"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mlff2d.errors import InputError
from mlff2d.runinfo import RunRecord
from mlff2d.settings import Settings, setting
from mlff2d.workflow import SUMMARY, StageResult, Workflow

Device = Literal["cpu", "cuda"]


def check_device(device: str | None) -> None:
    """Refuse ``"cuda"`` when torch sees no CUDA GPU (one line naming ``--device``)."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise InputError(
                "--device cuda requested but no CUDA GPU is visible to torch",
                "use --device cpu or a CUDA build of torch",
            )


# -- train ----------------------------------------------------------------------------------------


@dataclass
class TrainSettings(Settings):
    """Settings of ``mlff2d train`` (the model itself is described by the mace-torch YAML).

    Attributes
    ----------
    config
        mace-torch training YAML (plus an optional ``mlff2d:`` mapping, see
        :class:`mlff2d.training.train.Mlff2dKeys`).
    data
        Output folder of ``mlff2d dataset`` (``train/valid/test.extxyz``); overrides the YAML's
        ``mlff2d.data``.
    train_file, valid_file, test_file
        Explicit dataset files (extxyz); ``train_file`` overrides ``data``.
    device
        ``"cpu"`` or ``"cuda"``; overrides the YAML's ``device``.
    seed
        Random seed of mace-torch; overrides the YAML's ``seed``.
    committee
        Number of models K: 1 trains one model (:class:`TrainWorkflow`); K ≥ 2 a committee
        (:class:`~mlff2d.training.committee.CommitteeWorkflow`: member i with seed + i on a
        bootstrap resample of the training split).
    """

    config: Path = setting(help="mace-torch training YAML (training/*.yaml).", argument=True)
    data: Path | None = setting(None, "Dataset folder from `mlff2d dataset` (train/valid/test.extxyz).")
    train_file: Path | None = setting(None, "Training extxyz (overrides --data).")
    valid_file: Path | None = setting(None, "Validation extxyz.")
    test_file: Path | None = setting(None, "Test extxyz (evaluated after training).")
    device: Device | None = setting(None, "Overrides the config's device.")
    seed: int | None = setting(None, "Overrides the config's seed.", ge=0)
    committee: int = setting(
        1, "Train a committee of K models (seed + i, bootstrap resample of the train split).", ge=1
    )


@dataclass
class TrainResult(StageResult):
    """A trained model and its errors.

    Attributes
    ----------
    model
        The trained mace-torch model (``<name>.model``; the SWA/stage-two model if any).
    metrics_json
        ``metrics.json``: the content of ``metrics``.
    mace_config
        The complete mace-torch config of the run (``mace_config.yaml``).
    metrics
        E0s method, dataset hash and sizes, training time (s), valid/test errors
        (see :class:`EvaluateResult`).
    config_hash, dataset_hash
        Hashes of the mace-torch settings (with the data) and of the dataset files.
    e0s
        How the isolated-atom energies were chosen (``"zero"``, ``"least-squares"``, ...).
    train_cpu_s
        CPU time of the training (s).
    valid, test
        Overall errors on the validation and test splits (meV/atom, meV/Å, meV/Å³), if given.
    """

    model: Path
    metrics_json: Path
    mace_config: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    dataset_hash: str = ""
    e0s: str = ""
    train_cpu_s: float = 0.0
    valid: dict[str, Any] | None = None
    test: dict[str, Any] | None = None


class TrainWorkflow(Workflow[TrainSettings, TrainResult]):
    """Train a MACE model with mace-torch, in process; then evaluate it on valid/test.

    The output folder is mace-torch's ``work_dir``. A run that was interrupted continues from its
    last checkpoint when run again; a folder holding a run started with other mace-torch settings
    or data is refused (``force`` deletes it and trains from scratch). See
    :class:`mlff2d.training.train.Trainer`.
    """

    command = "train"
    Settings = TrainSettings
    Result = TrainResult
    #: the :class:`~mlff2d.training.train.Trainer` built by :meth:`check`.
    _trainer: Any = None

    def inputs(self) -> dict[str, Path]:
        """The training YAML and the dataset files it resolves to (from ``data`` or the files)."""
        return train_inputs(self.settings)

    def check(self) -> None:
        """Check the config (mace-torch keys, data given) and the device before training."""
        from mlff2d.training.train import Trainer

        k = self.settings.committee
        if k > 1:
            raise InputError(
                f"TrainWorkflow trains one model, the settings ask for a committee of {k}",
                "use mlff2d.training.committee.CommitteeWorkflow (or `mlff2d train --committee K`)",
            )

        self._trainer = Trainer(self.settings, self.outdir, force=self.force, progress=self.progress)
        self._trainer._check_data()  # every split readable and labelled, before the folder exists

    def _run(self, record: RunRecord) -> TrainResult:
        if self._trainer is None:
            self.check()
        return self._trainer.run(record)

    @classmethod
    def load(cls, outdir: str | Path) -> TrainResult:
        """The result of a finished run folder, also of one written before workflows existed."""
        try:
            return super().load(outdir)  # type: ignore[return-value]
        except InputError:
            from mlff2d.training.committee import is_committee

            if is_committee(outdir):
                raise InputError(
                    f"{outdir} holds a committee of models, not one",
                    "load it with CommitteeWorkflow.load, or give a member folder (member_0)",
                ) from None
            legacy = _legacy_train_result(Path(outdir))
            if legacy is None:
                raise
            return legacy


def train_inputs(settings: TrainSettings) -> dict[str, Path]:
    """The training YAML and the dataset files ``settings`` resolve to (the inputs of a training)."""
    from mlff2d.training.train import read_config

    files = read_config(settings)[2]
    return {"config": settings.config, **{k: Path(v) for k, v in files.as_dict().items()}}


def _legacy_train_result(outdir: Path) -> TrainResult | None:
    """The result of a run folder written by mlff2d before ``summary.yaml`` held a typed result."""
    import yaml

    summary, metrics_json = outdir / SUMMARY, outdir / "metrics.json"
    if not (summary.is_file() and metrics_json.is_file()):
        return None
    old = yaml.safe_load(summary.read_text()) or {}
    if old.get("command") != "train" or "result" in old:
        return None
    metrics = json.loads(metrics_json.read_text())
    config_hash = str(old.get("results", {}).get("config_hash", ""))
    return train_result(outdir, outdir / metrics["model"], outdir / "mace_config.yaml", metrics, config_hash)


def train_result(
    outdir: Path, model: Path, mace_config: Path, metrics: dict[str, Any], config_hash: str
) -> TrainResult:
    """The result of a training run from its ``metrics.json`` content (written in ``outdir``)."""
    return TrainResult(
        outdir=outdir,
        model=model,
        metrics_json=outdir / "metrics.json",
        mace_config=mace_config,
        metrics=metrics,
        config_hash=config_hash,
        dataset_hash=str(metrics.get("dataset_hash", "")),
        e0s=str((metrics.get("e0s") or {}).get("method", "")),
        train_cpu_s=float(metrics.get("train_cpu_s", 0.0)),
        valid=(metrics.get("valid") or {}).get("overall"),
        test=(metrics.get("test") or {}).get("overall"),
    )


# -- evaluate -------------------------------------------------------------------------------------


@dataclass
class EvaluateSettings(Settings):
    """Settings of ``mlff2d evaluate``.

    Attributes
    ----------
    model
        mace-torch ``*.model`` file, or the run folder of a committee (``mlff2d train
        --committee K``): its mean is evaluated and σ_F calibrated against the force errors.
    data
        Labelled extxyz: energies (eV), forces (eV/Å), optionally stresses (eV/Å³).
    batch_size
        Structures per batch (the numbers do not depend on it).
    device
        ``"cpu"`` or ``"cuda"``.
    head
        Head of a multi-head model (default: the first).
    energy_key, forces_key, stress_key
        Names of the reference labels in the extxyz file.
    target_force_error
        Committees only: the σ_F threshold is where the binned RMS force error reaches this
        (eV/Å; see :func:`mlff2d.training.uncertainty.calibrate`).
    """

    model: Path = setting(help="mace-torch model file, or a committee run folder.", argument=True)
    data: Path = setting(help="Labelled extxyz.", argument=True)
    batch_size: int = setting(16, "Structures per batch.", ge=1)
    device: Device = setting("cpu", "Device to evaluate on.")
    head: str | None = setting(None, "Head of a multi-head model.")
    energy_key: str = setting("REF_energy", "Reference energy key of the extxyz (eV).")
    forces_key: str = setting("REF_forces", "Reference forces key of the extxyz (eV/Å).")
    stress_key: str = setting("REF_stress", "Reference stress key of the extxyz (eV/Å³).")
    target_force_error: float = setting(
        0.1, "Committee: σ_F threshold where the binned RMS force error reaches this.", unit="eV/Å", gt=0
    )


@dataclass
class EvaluateResult(StageResult):
    """Errors of a model on a labelled dataset.

    Attributes
    ----------
    metrics
        ``{"overall": {...}, "by_config_type": {name: {...}}, "units": {...}, "data", "model"}``;
        each entry has ``n_configs``, ``n_atoms``, ``energy``/``forces``/``stress`` with ``mae``
        and ``rmse`` (forces also per component x, y, z), in meV/atom, meV/Å, meV/Å³.
    metrics_json, metrics_md
        ``metrics.json`` and the Markdown table ``metrics.md``.
    predictions
        The structures with ``MACE_energy``, ``MACE_forces`` (``MACE_stress``) next to the labels.
    parity_energy, parity_forces
        Parity plots (PNG).
    energy_rmse, forces_rmse
        Overall RMSE of the energy per atom (meV/atom) and of the force components (meV/Å).
    calibration
        Committees only: ``calibration.png`` (σ_F against the true force error per atom).
    uncertainty
        Committees only: Spearman rank correlation of σ_F with the per-atom force error, the
        σ_F threshold (eV/Å) and the binned curve (``metrics["uncertainty"]``).
    """

    metrics: dict[str, Any]
    metrics_json: Path
    metrics_md: Path
    predictions: Path
    parity_energy: Path
    parity_forces: Path
    energy_rmse: float = 0.0
    forces_rmse: float = 0.0
    calibration: Path | None = None
    uncertainty: dict[str, Any] | None = None

    def one_line(self) -> str:
        """Overall errors in one line."""
        from mlff2d.training.evaluate import one_line

        return one_line(self.metrics["overall"])


class EvaluateWorkflow(Workflow[EvaluateSettings, EvaluateResult]):
    """Batched errors of a model on a labelled dataset, per ``config_type``, with parity plots."""

    command = "evaluate"
    Settings = EvaluateSettings
    Result = EvaluateResult

    def inputs(self) -> dict[str, Path]:
        """The data and the model file, or every member model of a committee folder."""
        if not self.settings.model.is_dir():
            return super().inputs()
        from mlff2d.training.committee import committee_inputs

        return {"data": self.settings.data, **committee_inputs(self.settings.model)}

    def check(self) -> None:
        """Refuse ``--device cuda`` without a GPU, and a model or data the run could not read."""
        from mlff2d.validate import check_model_and_data

        s = self.settings
        check_device(s.device)
        check_model_and_data(s.model, s.data, s.energy_key, s.forces_key)

    def _run(self, record: RunRecord) -> EvaluateResult:
        from mlff2d.training.evaluate import evaluate

        return evaluate(self.settings, self.outdir, record, progress=self.progress)


# -- export ---------------------------------------------------------------------------------------


@dataclass
class ExportSettings(Settings):
    """Settings of ``mlff2d export``.

    Attributes
    ----------
    model
        mace-torch ``*.model`` file (trained by ``mlff2d train``, or any MACE model); the
        command also takes a committee run folder (every member is exported, see
        :class:`~mlff2d.training.committee.CommitteeExportWorkflow`).
    dtype
        Floating-point type of the exported model.
    head
        Head to export (required for multi-head models).
    symmetrix
        Also convert the model for Symmetrix-XL and compile its kernels once, into
        ``<model>.symmetrix/`` next to the model (float64, and the export dtype): the fast
        route of the ASE evaluations (:mod:`mlff2d.training.symmetrix`). Skipped, with the
        reason, when symmetrix-xl is not installed or does not take the architecture.
    """

    model: Path = setting(help="mace-torch model file, or a committee run folder.", argument=True)
    dtype: Literal["float64", "float32"] = setting("float64", "Precision of the exported model.")
    head: str | None = setting(None, "Head to export (required for multi-head models).")
    symmetrix: bool = setting(True, "Also prepare the Symmetrix-XL route (convert + compile once, ~1 min).")


@dataclass
class ExportResult(StageResult):
    """A TorchScript model for ``pair_style mace`` and its JSON sidecar.

    Attributes
    ----------
    lammps_model
        ``<name>.model-lammps.pt`` (the card is embedded as the extra file ``mlff2d.json``).
    sidecar
        ``<name>.model-lammps.json``: the :class:`mlff2d.training.export.ModelCard`.
    pair_coeff
        The LAMMPS ``pair_coeff`` line (elements in LAMMPS type order).
    elements
        Element symbols in LAMMPS type order.
    dtype, head
        The exported precision and head.
    r_max
        Cut-off radius (Å).
    num_interactions
        Message-passing layers (receptive field ``num_interactions * r_max`` Å).
    symmetrix_model
        The Symmetrix-XL model (``<model>.symmetrix/model.json``, kernels in ``jit/``), or
        ``None`` when the route was not prepared.
    symmetrix
        What happened to the Symmetrix-XL route (compile times, or why it was skipped).
    """

    lammps_model: Path
    sidecar: Path
    pair_coeff: str
    elements: list[str] = field(default_factory=list)
    dtype: str = "float64"
    head: str = ""
    r_max: float = 0.0
    num_interactions: int = 0
    symmetrix_model: Path | None = None
    symmetrix: str = ""


class ExportWorkflow(Workflow[ExportSettings, ExportResult]):
    """Compile a MACE model to TorchScript for LAMMPS, with a JSON card (elements, r_max, metrics)."""

    command = "export"
    Settings = ExportSettings
    Result = ExportResult

    def inputs(self) -> dict[str, Path]:
        """The model file and the training run folder it sits in (its metrics go into the card)."""
        return {**super().inputs(), "training_run": self.settings.model.parent}

    def check(self) -> None:
        """The model must be a mace-torch model (loaded here), not a LAMMPS export."""
        from mlff2d.validate import mace_model_elements

        mace_model_elements(self.settings.model, "MODEL")

    def _run(self, record: RunRecord) -> ExportResult:
        from mlff2d.training.export import export

        return export(self.settings, self.outdir, record, training=self.training_result())

    def training_result(self) -> TrainResult | None:
        """The result of the training run that wrote the model (``None`` if it is not in one)."""
        try:
            return TrainWorkflow.load(self.settings.model.parent)
        except InputError:
            return None
