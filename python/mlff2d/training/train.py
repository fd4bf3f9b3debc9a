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
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlff2d.config import from_dict, load_yaml
from mlff2d.errors import CalculationFailed, ConfigError, InputError
from mlff2d.runinfo import RunRecord, atomic_write_text, file_hash, write_summary
from mlff2d.training.data import DatasetFiles, DatasetInfo, describe, import_mace, read_dataset

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


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes
    ----------
    model
        The trained mace-torch model (``<name>.model``; the SWA/stage-two model if any).
    outdir
        The run folder (mace-torch's ``work_dir``).
    metrics
        Content of ``metrics.json``: E0s method, dataset hash, valid/test errors.
    skipped
        True if the run was already complete and nothing was done.
    """

    model: Path
    outdir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False


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


class Trainer:
    """One ``mlff2d train`` run: checks, mace-torch training, test metrics, summary.

    Parameters
    ----------
    config
        mace-torch training YAML (plus an optional ``mlff2d:`` mapping).
    outdir
        Run folder; becomes mace-torch's ``work_dir`` (checkpoints, logs, model).
    data
        ``mlff2d dataset`` output folder; overrides ``mlff2d.data`` of the YAML.
    train_file, valid_file, test_file
        Explicit dataset files; override ``data``.
    device
        ``"cpu"`` or ``"cuda"``; overrides the YAML's ``device``.
    force
        Delete old checkpoints and train from scratch.
    """

    def __init__(
        self,
        config: str | Path,
        outdir: str | Path,
        data: str | Path | None = None,
        train_file: str | Path | None = None,
        valid_file: str | Path | None = None,
        test_file: str | Path | None = None,
        device: str | None = None,
        force: bool = False,
    ) -> None:
        self.config_path = Path(config)
        self.outdir = Path(outdir)
        self.force = force
        raw = load_yaml(self.config_path)
        self.keys = from_dict(Mlff2dKeys, raw.pop("mlff2d", None), where=f"{self.config_path}: mlff2d")
        check_mace_keys(raw, str(self.config_path))
        self.mace_cfg: dict[str, Any] = raw
        yaml_test = self.mace_cfg.pop("test_file", None)
        self.files = self._resolve_files(data, train_file, valid_file, test_file, yaml_test)
        if device is not None:
            self.mace_cfg["device"] = device
        self._check_device(self.mace_cfg.get("device", "cpu"))
        self.record = RunRecord("train")
        self.result: TrainResult | None = None

    # -- set-up -----------------------------------------------------------------------------
    def _resolve_files(self, data, train_file, valid_file, test_file, yaml_test) -> DatasetFiles:
        if train_file is not None:
            return DatasetFiles(Path(train_file), _opt_path(valid_file), _opt_path(test_file))
        folder = data if data is not None else self.keys.data
        if folder is not None:
            files = DatasetFiles.from_folder(folder)
            return DatasetFiles(
                files.train, _opt_path(valid_file) or files.valid, _opt_path(test_file) or files.test
            )
        if self.mace_cfg.get("train_file"):
            return DatasetFiles(
                Path(self.mace_cfg["train_file"]),
                _opt_path(valid_file or self.mace_cfg.get("valid_file")),
                _opt_path(test_file or yaml_test),
            )
        raise InputError(
            f"{self.config_path}: no training data given",
            "pass --data FOLDER (from `mlff2d dataset`) or --train-file FILE",
        )

    @staticmethod
    def _check_device(device: str) -> None:
        if device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise InputError(
                    "--device cuda requested but no CUDA GPU is visible to torch",
                    "use --device cpu or a CUDA build of torch",
                )

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
    def run(self) -> TrainResult:
        """Train (or resume, or skip when complete), evaluate on the test split, write the summary."""
        infos = self._check_data()
        cfg, e0s_method = self.build_mace_config(infos)
        dhash = _dataset_hash(self.files)
        cfg_hash = config_hash(cfg, dhash)
        model_path = self._model_path(cfg)
        if not self.force and self._is_complete(cfg, dhash, model_path):
            logger.info(
                "%s is already trained with this config and data; nothing to do (use --force to retrain)",
                model_path,
            )
            metrics = json.loads((self.outdir / "metrics.json").read_text())
            self.result = TrainResult(model_path, self.outdir, metrics, skipped=True)
            return self.result
        if not self.force:
            self._check_same_run(cfg, dhash)
        if self.force:
            for old in ("checkpoints", "summary.yaml", "metrics.json", "mace_config.yaml", STATE_FILE):
                path = self.outdir / old
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
        self.outdir.mkdir(parents=True, exist_ok=True)
        state = {"config_hash": cfg_hash, "dataset_hash": dhash, "settings": _settings(cfg)}
        atomic_write_text(self.outdir / STATE_FILE, json.dumps(state, indent=1, default=str))
        cfg_file = self.outdir / "mace_config.yaml"
        atomic_write_text(cfg_file, yaml.safe_dump(cfg, sort_keys=False))
        args = parse_mace_args(cfg_file, str(self.config_path))
        if logging.getLogger().getEffectiveLevel() > logging.INFO and "log_level" not in self.mace_cfg:
            args.log_level = "WARNING"  # `mlff2d -q`: mace-torch's console quiet too (debug log kept)
        self.record.config = {"config_file": str(self.config_path), "mlff2d": asdict(self.keys), "mace": cfg}
        self.record.inputs = {"config": str(self.config_path), **self.files.as_dict()}
        cpu0 = time.process_time()
        with self.record.timer("train"):
            run_mace(args)
        cpu_s = round(time.process_time() - cpu0, 1)
        if not model_path.is_file():
            raise CalculationFailed(
                f"mace-torch finished without writing {model_path}", "see the log in the run folder"
            )
        metrics = {
            "e0s": {"method": e0s_method, "value": cfg.get("E0s")},
            "dataset_hash": dhash,
            "dataset": {
                k: {
                    "path": str(v.path.resolve()),
                    "n_configs": v.n_configs,
                    "n_atoms": v.n_atoms,
                    "sources": v.sources,
                }
                for k, v in infos.items()
            },
            "model": model_path.name,
            "train_time_s": self.record.timings["train"],
            "train_cpu_s": cpu_s,
            "torch_threads": _torch_threads(),
        }
        with self.record.timer("evaluate"):
            metrics.update(self._evaluate(model_path, cfg))
        atomic_write_text(self.outdir / "metrics.json", json.dumps(metrics, indent=2))
        self.record.outputs = {
            "model": model_path.name,
            "metrics": "metrics.json",
            "mace_config": cfg_file.name,
            "checkpoints": "checkpoints",
            "logs": "logs",
        }
        self.record.results = {
            "config_hash": cfg_hash,
            "dataset_hash": dhash,
            "e0s": e0s_method,
            "train_cpu_s": cpu_s,
            **{k: v["overall"] for k, v in metrics.items() if k in ("valid", "test")},
        }
        write_summary(self.outdir, self.record)
        self.result = TrainResult(model_path, self.outdir, metrics)
        return self.result

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

    def _is_complete(self, cfg: dict[str, Any], dhash: str, model_path: Path) -> bool:
        """True if the folder holds a finished run of exactly these settings and data."""
        files = (self.outdir / "summary.yaml", model_path, self.outdir / "metrics.json")
        if not all(f.is_file() for f in files):
            return False
        previous = self._previous_run()
        return previous is not None and previous[1] == dhash and not self._changed(cfg, dhash)

    def _evaluate(self, model_path: Path, cfg: dict[str, Any]) -> dict[str, Any]:
        from mlff2d.training.evaluate import evaluate_model

        out: dict[str, Any] = {}
        for split in ("valid", "test"):
            path = getattr(self.files, split)
            if path is None:
                continue
            res = evaluate_model(
                model_path,
                path,
                self.outdir / f"eval_{split}",
                batch_size=self.keys.test_batch_size,
                device=cfg.get("device", "cpu"),
                energy_key=cfg.get("energy_key", "REF_energy"),
                forces_key=cfg.get("forces_key", "REF_forces"),
                stress_key=cfg.get("stress_key", "REF_stress"),
            )
            out[split] = res.metrics
            logger.info("%s errors: %s", split, res.one_line())
        return out


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
            run(args)
    except (AssertionError, RuntimeError, ValueError, KeyError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CalculationFailed(f"mace-torch training failed: {msg}", "see logs/ in the run folder") from exc
    finally:
        for h in root.handlers:
            h.close()
        root.handlers, root.filters = saved[0], saved[1]
        root.setLevel(saved[2])


def train(config: str | Path, outdir: str | Path, **kwargs: Any) -> TrainResult:
    """Train a MACE model; see :class:`Trainer` for the parameters."""
    return Trainer(config, outdir, **kwargs).run()
