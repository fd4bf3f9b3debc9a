"""Train a MACE model with mace-torch, in process, from mace-torch's own YAML config.

The training YAML (``training/*.yaml``) is mace-torch's config file: its keys are the
options of ``mace_run_train`` and go, unchanged, to mace-torch's own argument parser
(:func:`mace.tools.build_default_arg_parser`) and to :func:`mace.cli.run_train.run`. Nothing
is re-declared here. mlff2d adds only what a config file cannot know:

* the dataset files (``--data FOLDER`` from ``mlff2d dataset``, or ``--train-file`` ...),
* the output folder (``work_dir``), the device, and ``restart_latest`` (always on, so that
  running the same command after an interruption continues from the last checkpoint),
* ``E0s`` when the YAML leaves it out: zero for SW-teacher labels, isolated-atom energies
  when the training set has ``IsolatedAtom`` frames, else mace-torch's least-squares
  ``average``. The choice is recorded in ``metrics.json``.

A few mlff2d-only keys may sit under a top-level ``mlff2d:`` mapping (see
:class:`Mlff2dKeys`); they are removed before the rest goes to mace-torch. The test split is
evaluated by :mod:`mlff2d.training.evaluate` (batched), so ``test_file`` is not passed on.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import hashlib
import io
import json
import logging
import os
import platform
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlff2d.config import from_dict, load_yaml
from mlff2d.errors import CalculationFailed, ConfigError, InputError
from mlff2d.runinfo import RunRecord, atomic_write_text, file_hash
from mlff2d.training.checkpoints import set_aside_unreadable
from mlff2d.training.data import DatasetFiles, DatasetInfo, describe, import_mace, read_dataset
from mlff2d.training.workflows import TrainResult, TrainSettings, check_device, train_result
from mlff2d.workflow import SUMMARY

logger = logging.getLogger(__name__)

#: mace-torch options that mlff2d sets itself (from the command line and the data).
MANAGED_KEYS = ("work_dir", "train_file", "valid_file", "restart_latest")
#: mace-torch options that may change when a run is continued (more epochs).
CONTINUE_KEYS = frozenset({"max_num_epochs"})
#: File in a run folder with the settings and dataset hash the run was started with.
STATE_FILE = "mlff2d_train.json"
#: Harmless warnings that torch/e3nn/mace-torch print during every training run.
_NOISE = (".*TorchScript type system.*", ".*pin_memory.*", ".*TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD.*")
#: Sources whose labels have no isolated-atom reference: their E0s are zero.
ZERO_E0_SOURCES = frozenset({"sw-teacher"})


@dataclass
class Mlff2dKeys:
    """Keys under ``mlff2d:`` in a training YAML (everything else belongs to mace-torch).

    Attributes
    ----------
    data
        Output folder of ``mlff2d dataset`` (``train/valid/test.extxyz``), relative to the
        working directory. The command line (``--data``, ``--train-file``) wins.
    test_batch_size
        Batch size of the test-set evaluation after training.
    """

    data: str | None = None
    test_batch_size: int = 16


def mace_option_names() -> set[str]:
    """Long option names (without ``--``) that mace-torch's training parser accepts."""
    import_mace()
    from mace.tools import build_default_arg_parser

    parser = build_default_arg_parser()
    return {s[2:] for a in parser._actions for s in a.option_strings if s.startswith("--")}


def check_mace_keys(cfg: dict[str, Any], where: str) -> None:
    """Raise :class:`ConfigError` naming the first key mace-torch does not know."""
    known = mace_option_names()
    for key in cfg:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=3)
            hint = (
                f"did you mean {', '.join(close)}?"
                if close
                else "see `mace_run_train --help` for its options"
            )
            raise ConfigError(f"{where}: unknown mace-torch option '{key}'", hint)


def parse_mace_args(config_file: Path, where: str):
    """Parse a mace-torch YAML with mace-torch's own parser; argparse errors become one line."""
    from mace.tools import build_default_arg_parser

    parser = build_default_arg_parser()
    buf = io.StringIO()
    try:
        with contextlib.redirect_stderr(buf):
            return parser.parse_args(["--config", str(config_file)])
    except SystemExit:
        lines = (
            [ln for ln in buf.getvalue().splitlines() if "error:" in ln]
            or buf.getvalue().splitlines()
            or ["?"]
        )
        msg = lines[-1].split("error:", 1)[-1].strip()
        raise ConfigError(f"{where}: mace-torch rejected the config: {msg}") from None


def choose_e0s(cfg: dict[str, Any], train: DatasetInfo) -> tuple[str | None, str]:
    """E0s for mace-torch and a description of the method (for ``metrics.json``).

    Returns
    -------
    (value, method)
        ``value`` is the string given to mace-torch's ``--E0s`` (``None``: isolated atoms in
        the training file); ``method`` is ``"zero"``, ``"fixed"``, ``"isolated-atom"``,
        ``"least-squares"`` or ``"json-file"``.
    """
    from ase.data import atomic_numbers

    sw_only = set(train.sources) <= ZERO_E0_SOURCES
    if "E0s" in cfg and cfg["E0s"] is not None:
        value = str(cfg["E0s"])
        method = _e0s_method(value)
        if sw_only and method != "zero":
            logger.warning(
                "E0s = %s for SW-teacher labels: the teacher's isolated atoms have zero energy, use E0s zero",
                value,
            )
        return value, method
    if sw_only:
        zeros = {atomic_numbers[s]: 0.0 for s in train.elements}
        return str(zeros), "zero"
    if train.n_isolated_atoms:
        return None, "isolated-atom"
    return "average", "least-squares"


def _e0s_method(value: str) -> str:
    low = value.strip().lower()
    if low == "average":
        return "least-squares"
    if low.endswith(".json"):
        return "json-file"
    if low in ("foundation", "estimated"):
        return low
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return "fixed"
    if isinstance(parsed, dict) and all(isinstance(v, (int, float)) and v == 0 for v in parsed.values()):
        return "zero"
    return "fixed"


def _dataset_hash(files: DatasetFiles) -> str:
    h = hashlib.sha256()
    for split, path in sorted(files.as_dict().items()):
        h.update(f"{split}:{file_hash(path, 64)}".encode())
    return h.hexdigest()[:16]


def read_config(settings: TrainSettings) -> tuple[Mlff2dKeys, dict[str, Any], DatasetFiles]:
    """Read the training YAML: its ``mlff2d:`` keys, the mace-torch options, the dataset files.

    Imports no mace-torch (also used to find the inputs of a finished run). The mace-torch
    options come without ``test_file`` (the test split is evaluated by mlff2d).

    Raises
    ------
    ConfigError
        Unreadable YAML or an unknown ``mlff2d:`` key.
    InputError
        No training data given, or a dataset folder without ``train.extxyz``.
    """
    raw = load_yaml(settings.config)
    keys = from_dict(Mlff2dKeys, raw.pop("mlff2d", None), where=f"{settings.config}: mlff2d")
    yaml_test = raw.pop("test_file", None)
    return keys, raw, _resolve_files(settings, keys, raw, yaml_test)


def _resolve_files(
    s: TrainSettings, keys: Mlff2dKeys, cfg: dict[str, Any], yaml_test: str | None
) -> DatasetFiles:
    """Dataset files: ``--train-file``, else ``--data``/``mlff2d.data``, else the YAML's files."""
    if s.train_file is not None:
        return DatasetFiles(s.train_file, s.valid_file, s.test_file)
    folder = s.data if s.data is not None else keys.data
    if folder is not None:
        files = DatasetFiles.from_folder(folder)
        return DatasetFiles(files.train, s.valid_file or files.valid, s.test_file or files.test)
    if cfg.get("train_file"):
        return DatasetFiles(
            Path(cfg["train_file"]),
            _opt_path(s.valid_file or cfg.get("valid_file")),
            _opt_path(s.test_file or yaml_test),
        )
    raise InputError(
        f"{s.config}: no training data given",
        "pass --data FOLDER (from `mlff2d dataset`) or --train-file FILE",
    )


class Trainer:
    """One training run in a folder: checks, mace-torch training (resumed), valid/test errors.

    Whether the folder already holds the finished result is decided by
    :meth:`mlff2d.workflow.Workflow.is_finished` (run through :class:`TrainWorkflow`); the
    Trainer continues an interrupted run from its last checkpoint, and refuses a folder that
    holds a run started with other settings or data.

    Parameters
    ----------
    settings
        The config file, data and device.
    outdir
        Run folder; becomes mace-torch's ``work_dir`` (checkpoints, logs, model).
    force
        Delete old checkpoints and train from scratch.
    progress
        Show progress bars of the evaluation.
    """

    def __init__(
        self, settings: TrainSettings, outdir: str | Path, force: bool = False, progress: bool = True
    ) -> None:
        self.settings = settings
        self.config_path = settings.config
        self.outdir = Path(outdir)
        self.force = force
        self.progress = progress
        self.keys, self.mace_cfg, self.files = read_config(settings)
        check_mace_keys(self.mace_cfg, str(self.config_path))
        if settings.device is not None:
            self.mace_cfg["device"] = settings.device
        if settings.seed is not None:
            self.mace_cfg["seed"] = settings.seed
        check_device(self.mace_cfg.get("device", "cpu"))

    # -- set-up -----------------------------------------------------------------------------
    def _check_data(self) -> dict[str, DatasetInfo]:
        ekey = self.mace_cfg.get("energy_key", "REF_energy")
        fkey = self.mace_cfg.get("forces_key", "REF_forces")
        skey = self.mace_cfg.get("stress_key", "REF_stress")
        infos = {}
        for split, path in self.files.as_dict().items():
            frames = read_dataset(path, ekey, fkey)
            infos[split] = describe(Path(path), frames, skey)
        train_el = set(infos["train"].elements)
        for info in infos.values():
            extra = sorted(set(info.elements) - train_el)
            if extra:
                raise InputError(
                    f"{info.path} contains element(s) {', '.join(extra)} absent from the training set",
                    "add structures with these elements to the training data",
                )
        return infos

    def build_mace_config(self, infos: dict[str, DatasetInfo]) -> tuple[dict[str, Any], str]:
        """Return the complete mace-torch config for this run, and the E0s method."""
        cfg = dict(self.mace_cfg)
        cfg.setdefault("name", "model")
        e0s, method = choose_e0s(cfg, infos["train"])
        if e0s is None:
            cfg.pop("E0s", None)
        else:
            cfg["E0s"] = e0s
        if cfg.get("work_dir") not in (None, str(self.outdir)):
            logger.warning(
                "work_dir %s of the config replaced by the output folder %s", cfg["work_dir"], self.outdir
            )
        cfg["work_dir"] = str(self.outdir)
        cfg["train_file"] = str(self.files.train)
        if self.files.valid is not None:
            cfg["valid_file"] = str(self.files.valid)
        else:
            cfg.pop("valid_file", None)
        cfg["restart_latest"] = True
        return cfg, method

    # -- run --------------------------------------------------------------------------------
    def run(self, record: RunRecord) -> TrainResult:
        """Train (continuing from the last checkpoint), evaluate on valid/test, write ``metrics.json``.

        Timings (s) of the training and the evaluation go into ``record``.
        """
        infos = self._check_data()
        cfg, e0s_method = self.build_mace_config(infos)
        dhash = _dataset_hash(self.files)
        cfg_hash = config_hash(cfg, dhash)
        if self.force:
            self._clear()
        else:
            self._check_same_run(cfg, dhash)
        cfg_file = self.outdir / "mace_config.yaml"
        atomic_write_text(cfg_file, yaml.safe_dump(cfg, sort_keys=False))
        model_path = self._model_path(cfg)
        trained = self._trained(cfg_hash, model_path)
        if trained is None:
            state = {"config_hash": cfg_hash, "dataset_hash": dhash, "settings": _settings(cfg)}
            trained = self._train(cfg_file, state)
        else:
            logger.info("%s: mace-torch training finished before; evaluating the model", self.outdir)
        if not model_path.is_file():
            raise CalculationFailed(
                f"mace-torch finished without writing {model_path}", "see the log in the run folder"
            )
        record.timings["train"] = trained["wall_s"]
        metrics = {
            "e0s": {"method": e0s_method, "value": cfg.get("E0s")},
            "dataset_hash": dhash,
            "dataset": {k: _dataset_entry(v) for k, v in infos.items()},
            "model": model_path.name,
            "train_time_s": trained["wall_s"],
            "train_cpu_s": trained["cpu_s"],
            "torch_threads": _torch_threads(),
            "determinism": determinism_record(cfg),
        }
        with record.timer("evaluate"):
            metrics.update(self.evaluate(model_path, cfg))
        atomic_write_text(self.outdir / "metrics.json", json.dumps(metrics, indent=2))
        return train_result(self.outdir, model_path, cfg_file, metrics, cfg_hash)

    def _clear(self) -> None:
        """Delete the checkpoints and records of an earlier run (``force``)."""
        for old in ("checkpoints", SUMMARY, "metrics.json", "mace_config.yaml", STATE_FILE):
            path = self.outdir / old
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    def _train(self, cfg_file: Path, state: dict[str, Any]) -> dict[str, float]:
        """Run mace-torch on ``cfg_file``; return its wall and CPU time (s), also kept in the state file.

        The state file records the run's settings before mace-torch starts (``trained: null``) and
        the times once it has returned: a later run then evaluates the model instead of
        training again (mace-torch would repeat the last epoch and overwrite the model).
        """
        path = self.outdir / STATE_FILE
        atomic_write_text(path, json.dumps({**state, "trained": None}, indent=1, default=str))
        args = parse_mace_args(cfg_file, str(self.config_path))
        if logging.getLogger().getEffectiveLevel() > logging.INFO and "log_level" not in self.mace_cfg:
            args.log_level = "WARNING"  # `mlff2d -q`: mace-torch's console quiet too (debug log kept)
        set_aside_unreadable(self.outdir / "checkpoints")  # a kill mid-write: restart from the last good one
        cpu0, t0 = time.process_time(), time.perf_counter()
        run_mace(args)
        trained = {
            "wall_s": round(time.perf_counter() - t0, 3),
            "cpu_s": round(time.process_time() - cpu0, 1),
        }
        atomic_write_text(path, json.dumps({**state, "trained": trained}, indent=1, default=str))
        return trained

    def _trained(self, cfg_hash: str, model_path: Path) -> dict[str, float] | None:
        """Wall and CPU time (s) of this run's mace-torch training if it has finished, else ``None``.

        Finished: the state file holds these settings and the training times, and the model
        exists. Folders of mlff2d versions without the times count as finished when they hold
        ``metrics.json`` (written only after training).
        """
        path = self.outdir / STATE_FILE
        if not (path.is_file() and model_path.is_file()):
            return None
        state = json.loads(path.read_text())
        if state.get("config_hash") != cfg_hash:
            return None
        if "trained" in state:
            return state["trained"]
        metrics = self.outdir / "metrics.json"
        if not metrics.is_file():
            return None
        old = json.loads(metrics.read_text())
        return {"wall_s": old.get("train_time_s", 0.0), "cpu_s": old.get("train_cpu_s", 0.0)}

    def _model_path(self, cfg: dict[str, Any]) -> Path:
        model_dir = Path(cfg.get("model_dir") or self.outdir)
        suffix = "_stagetwo.model" if cfg.get("swa") else ".model"
        return model_dir / f"{cfg['name']}{suffix}"

    def _previous_run(self) -> tuple[dict[str, Any], str | None] | None:
        """Settings and dataset hash of the run already in the folder, or None if there is none.

        From ``mlff2d_train.json``; for runs written before that file existed, from the
        ``mace_config.yaml`` mlff2d wrote and the ``dataset_hash`` of ``metrics.json``.
        """
        state = self.outdir / STATE_FILE
        if state.is_file():
            old = json.loads(state.read_text())
            return old.get("settings", {}), old.get("dataset_hash")
        legacy = self.outdir / "mace_config.yaml"
        if legacy.is_file():
            metrics = self.outdir / "metrics.json"
            dhash = json.loads(metrics.read_text()).get("dataset_hash") if metrics.is_file() else None
            return _settings(yaml.safe_load(legacy.read_text()) or {}), dhash
        checkpoints = self.outdir / "checkpoints"
        if checkpoints.is_dir() and any(checkpoints.iterdir()):
            return {}, None
        return None

    def _changed(self, cfg: dict[str, Any], dhash: str, ignore: frozenset[str] = frozenset()) -> list[str]:
        """What differs between this run and the one in the folder ([] if same or none)."""
        previous = self._previous_run()
        if previous is None:
            return []
        prev, old_dhash = previous
        if not prev:
            return ["unknown settings: checkpoints without a run record"]
        if old_dhash is not None and old_dhash != dhash:
            return ["the dataset"]
        new = _settings(cfg)
        return sorted(k for k in set(new) | set(prev) if k not in ignore and new.get(k) != prev.get(k))

    def _check_same_run(self, cfg: dict[str, Any], dhash: str) -> None:
        """Refuse to continue a run folder that was started with another config or dataset.

        mace-torch's ``restart_latest`` would load the old checkpoints into the new settings
        (and, with SWA, re-save the model files with other weights), so a finished or
        interrupted run is only continued with the settings and data that started it; only
        :data:`CONTINUE_KEYS` (e.g. a larger ``max_num_epochs``) may change.
        """
        changed = self._changed(cfg, dhash, ignore=CONTINUE_KEYS)
        if changed:
            raise InputError(
                f"{self.outdir} holds a training run started with other settings ({', '.join(changed)})",
                "use a new output folder, or --force to delete it and train from scratch",
            )

    def evaluate(self, model_path: Path, cfg: dict[str, Any]) -> dict[str, Any]:
        """Errors on the valid and test splits (``eval_valid/``, ``eval_test/``), by split.

        ``model_path`` is a model file, or a committee folder (its mean and σ_F calibration).
        """
        from mlff2d.training.workflows import EvaluateSettings, EvaluateWorkflow

        out: dict[str, Any] = {}
        for split in ("valid", "test"):
            path = getattr(self.files, split)
            if path is None:
                continue
            settings = EvaluateSettings(
                model=model_path,
                data=path,
                batch_size=self.keys.test_batch_size,
                device=cfg.get("device", "cpu"),
                energy_key=cfg.get("energy_key", "REF_energy"),
                forces_key=cfg.get("forces_key", "REF_forces"),
                stress_key=cfg.get("stress_key", "REF_stress"),
            )
            res = EvaluateWorkflow(settings, self.outdir / f"eval_{split}", progress=self.progress).run()
            out[split] = res.metrics
            logger.info("%s errors: %s", split, res.one_line())
        return out


def _dataset_entry(info: DatasetInfo) -> dict[str, Any]:
    """What ``metrics.json`` records of one dataset split."""
    return {
        "path": str(info.path.resolve()),
        "n_configs": info.n_configs,
        "n_atoms": info.n_atoms,
        "sources": info.sources,
    }


def _settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """The mace-torch settings of a run without the folder and file names mlff2d manages."""
    return json.loads(json.dumps({k: v for k, v in cfg.items() if k not in MANAGED_KEYS}, default=str))


def config_hash(cfg: dict[str, Any], dataset_hash: str) -> str:
    """Hash of a run's mace-torch settings and dataset content (16 hex digits).

    The folder and file names (``work_dir``, ``train_file``, ``valid_file``) are left out: the
    dataset enters through the hash of its content, so a run copied to another folder, or the
    same data read from another path, is still the same run.
    """
    blob = json.dumps([_settings(cfg), dataset_hash], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


@contextlib.contextmanager
def deterministic_torch():
    """Run the enclosed torch code with ``torch.use_deterministic_algorithms`` on, then restore.

    On CPU, mace-torch's training with a given seed is already bit-identical from run to run
    and for 1, 2 or 4 threads (measured with torch 2.13 + MKL); the switch guards GPU runs,
    where scatter/index additions have nondeterministic kernels (``warn_only``: an op without
    a deterministic kernel warns instead of failing). ``CUBLAS_WORKSPACE_CONFIG`` is set for
    cuBLAS if not set already.
    """
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def determinism_record(cfg: dict[str, Any]) -> dict[str, Any]:
    """What a run's numbers depend on besides its settings and data (for ``metrics.json``).

    The seed, the deterministic switch, the data-loader workers, and what varies between
    machines: the CPU model, the vector instruction set torch dispatches to
    (``cpu_capability``), the BLAS, and the torch version.
    """
    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        names = [
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return {
        "seed": cfg.get("seed"),
        "deterministic_algorithms": True,
        "num_workers": cfg.get("num_workers", 0),
        "cpu": cpu,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "blas": "MKL" if torch.backends.mkl.is_available() else "other",
        "torch": str(torch.__version__),
    }


def _opt_path(p: str | Path | None) -> Path | None:
    return Path(p) if p else None


def run_mace(args) -> None:
    """Run mace-torch's training in process, keeping the root logger as it was.

    mace-torch's ``run`` adds its own console and file handlers to the root logger; ours are
    set aside meanwhile (so each line prints once) and everything is restored afterwards.
    """
    from mace.cli.run_train import run

    from mlff2d.runtime import keep_allocator_memory

    keep_allocator_memory()
    root = logging.getLogger()
    saved = (list(root.handlers), list(root.filters), root.level)
    root.handlers = []
    try:
        with warnings.catch_warnings():
            for msg in _NOISE:
                warnings.filterwarnings("ignore", message=msg)
            with deterministic_torch():
                run(args)
    except (AssertionError, RuntimeError, ValueError, KeyError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CalculationFailed(f"mace-torch training failed: {msg}", "see logs/ in the run folder") from exc
    finally:
        for h in root.handlers:
            h.close()
        root.handlers, root.filters = saved[0], saved[1]
        root.setLevel(saved[2])
