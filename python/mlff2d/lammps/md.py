"""MD of a (defective) 2D supercell with LAMMPS: ``lammps_inputs/in.wse2_defect`` driven from Python.

:class:`MDRun` writes the supercell with :mod:`mlff2d.structures` (any 2H MX2, any defect),
runs ``lmp`` (or ``mpirun -np N lmp``) on ``in.wse2_defect`` with ``-var data``, and records
the run in ``summary.yaml``. Stages: minimise → Langevin equilibration at T → write_restart →
NVE production dumping positions and velocities every ``dump_every`` steps (extxyz, Å and Å/ps).

Re-running a finished run is a no-op; a run stopped during production restarts the production
from ``equilibrated.restart``; ``force=True`` starts again.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mlff2d.errors import InputError
from mlff2d.runinfo import RunRecord, file_hash, write_summary
from mlff2d.units import nyquist_thz, resolution_thz

logger = logging.getLogger(__name__)

TRAJ_FILES = {"extxyz": "traj.extxyz", "lammps": "traj.lammpstrj"}
RESTART = "equilibrated.restart"
DATA = "system.data"


@dataclass
class MDConfig:
    """Settings of ``mlff2d md`` (YAML keys = CLI option names with ``_``).

    Attributes
    ----------
    material
        ``WSe2``, ``MoS2``, ... or a structure file (extxyz, LAMMPS data...).
    supercell
        In-plane repetitions (N, M) of the primitive cell (ignored for a structure file).
    defect
        Defect name (``V_Se``, ``V_Se2``, ``V_W``, ``Se_W``, ``W_Se``, ``Mo_W``...) or None.
    pair
        ``mace`` (the plugin, needs ``model``) or ``sw`` (the SW teacher).
    model
        ``*.model-lammps.pt`` file for ``pair mace``.
    temperature
        K.
    dt
        Time step (fs).
    equil_steps, steps
        Langevin equilibration and NVE production steps.
    dump_every
        Production dump interval (steps).
    """

    material: str = "WSe2"
    supercell: tuple[int, int] = (12, 12)
    defect: str | None = "V_Se"
    pair: Literal["mace", "sw"] = "mace"
    model: str | None = None
    mace_options: str = ""
    temperature: float = 300.0
    dt: float = 1.0
    equil_steps: int = 5000
    steps: int = 10000
    dump_every: int = 5
    dump_format: Literal["extxyz", "lammps"] = "extxyz"
    minimize: bool = True
    tdamp: float = 100.0
    thermo: int = 100
    seed: int = 12345
    nprocs: int = 1
    threads: int = 1
    input: str | None = None
    extra_vars: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise :class:`InputError` for inconsistent settings."""
        if self.pair == "mace":
            if not self.model:
                raise InputError("pair mace needs a model", "pass --model X.model-lammps.pt or --pair sw")
            if not Path(self.model).is_file():
                raise InputError(f"model file {self.model} not found", "export it with `mlff2d export`")
            if not str(self.model).endswith(".pt"):
                raise InputError(
                    f"{self.model} is not a LAMMPS export (*.model-lammps.pt)",
                    "export the *.model with `mlff2d export`",
                )
        if self.dt <= 0 or self.steps < 0 or self.equil_steps < 0 or self.dump_every < 0:
            raise InputError("dt must be > 0 and steps, equil_steps, dump_every >= 0")
        if self.dump_every and self.steps % self.dump_every:
            raise InputError(f"steps ({self.steps}) must be a multiple of dump_every ({self.dump_every})")
        if self.nprocs < 1 or self.threads < 1:
            raise InputError("nprocs and threads must be >= 1")


class MDRun:
    """One LAMMPS MD run in an output folder.

    Parameters
    ----------
    config
        The settings.
    outdir
        Output folder: ``system.data``, ``structure.extxyz`` (with ``defect_center``),
        ``log.lammps``, ``lammps.out``, ``equilibrated.restart``, the trajectory, ``summary.yaml``.
    force
        Start from scratch even if a finished or equilibrated run is there.
    """

    def __init__(self, config: MDConfig, outdir: str | Path, force: bool = False) -> None:
        config.validate()
        self.config = config
        self.outdir = Path(outdir)
        self.force = force
        self.results: dict[str, Any] = {}

    # ------------------------------------------------------------------ files
    @property
    def output_files(self) -> dict[str, Path]:
        """Products of the run by name."""
        o = self.outdir
        return {
            "data": o / DATA,
            "structure": o / "structure.extxyz",
            "log": o / "log.lammps",
            "screen": o / "lammps.out",
            "restart": o / RESTART,
            "trajectory": o / TRAJ_FILES[self.config.dump_format],
            "summary": o / "summary.yaml",
        }

    def expected_frames(self) -> int:
        """Frames of a complete production trajectory."""
        c = self.config
        return c.steps // c.dump_every + 1 if c.dump_every else 0

    def count_frames(self) -> int:
        """Frames in the trajectory file now (0 if missing)."""
        path = self.output_files["trajectory"]
        if not path.is_file():
            return 0
        marker = "Lattice=" if self.config.dump_format == "extxyz" else "ITEM: TIMESTEP"
        with open(path, errors="replace") as fh:
            return sum(1 for line in fh if marker in line)

    def is_complete(self) -> bool:
        """Tell whether a previous run with the same settings finished its production."""
        import yaml

        summ = self.output_files["summary"]
        if not summ.is_file():
            return False
        old = yaml.safe_load(summ.read_text()) or {}
        same = old.get("config") == self._config_dict()
        return (
            same
            and old.get("results", {}).get("complete") is True
            and self.count_frames() >= self.expected_frames()
        )

    def _config_dict(self) -> dict[str, Any]:
        d = asdict(self.config)
        d["supercell"] = list(self.config.supercell)
        return d

    # ------------------------------------------------------------------ stages
    def write_system(self) -> list[str]:
        """Build the supercell (or read it) and write ``system.data`` + ``structure.extxyz``."""
        from mlff2d.lammps.run import write_data
        from mlff2d.structures import (
            check_2d,
            make_defect,
            monolayer,
            read_structure,
            supercell,
            write_structure,
        )

        c = self.config
        if Path(c.material).is_file():
            atoms = read_structure(c.material)
        else:
            atoms = supercell(monolayer(c.material), *c.supercell)
            if c.defect:
                atoms = make_defect(atoms, c.defect)
        check_2d(atoms)
        self.atoms = atoms
        write_structure(atoms, self.output_files["structure"], fmt="extxyz")
        return write_data(atoms, self.output_files["data"])

    def spectral_limits(self) -> dict[str, float]:
        """Nyquist frequency and the resolution of the whole production trajectory (THz)."""
        c = self.config
        if not c.dump_every:
            return {}
        n = self.expected_frames()
        return {
            "nyquist_THz": nyquist_thz(c.dt, c.dump_every),
            "resolution_THz": resolution_thz(c.dt, c.dump_every, max(n - 1, 1)),
        }

    def lammps_variables(self, elements: list[str], restart: bool) -> dict[str, Any]:
        """``-var`` values for ``in.wse2_defect``."""
        c = self.config
        v: dict[str, Any] = {
            "pair": c.pair,
            "data": DATA,
            "elements": " ".join(elements),
            "defect": c.defect or "none",
            "T": c.temperature,
            "dt": c.dt,
            "seed": c.seed,
            "tdamp": c.tdamp,
            "minimize": int(c.minimize),
            "equil": c.equil_steps,
            "steps": c.steps,
            "dump_every": c.dump_every,
            "dump_format": c.dump_format,
            "thermo": c.thermo,
            "mace_opts": c.mace_options,
            "prefix": "",
        }
        if c.model:
            v["model"] = str(Path(c.model).resolve())
        if restart:
            v["restart"] = RESTART
        v.update(c.extra_vars)
        return v

    def run(self) -> dict[str, Any]:
        """Run (or resume, or skip) the MD; write ``summary.yaml``; return the results."""
        from mlff2d.lammps.run import inputs_dir, run_lammps

        c = self.config
        self.outdir.mkdir(parents=True, exist_ok=True)
        if not self.force and self.is_complete():
            logger.info("%s: finished run found, nothing to do (use --force to rerun)", self.outdir)
            import yaml

            self.results = yaml.safe_load(self.output_files["summary"].read_text())["results"]
            self.results["skipped"] = True
            return self.results
        rec = RunRecord("md", config=self._config_dict())
        elements = self.write_system()
        limits = self.spectral_limits()
        if limits:
            logger.info(
                "sampling every %g fs: Nyquist frequency %.2f THz, resolution %.4f THz "
                "(whole production run)",
                c.dt * c.dump_every,
                limits["nyquist_THz"],
                limits["resolution_THz"],
            )
        restart = (
            not self.force
            and self.output_files["restart"].is_file()
            and (self.outdir / "restart.key").is_file()
            and (self.outdir / "restart.key").read_text() == self._restart_key()
        )
        if restart:
            logger.info("resuming production from %s", self.output_files["restart"])
        input_file = Path(c.input).resolve() if c.input else inputs_dir() / "in.wse2_defect"
        rec.inputs = {"input": str(input_file), "input_hash": file_hash(input_file)}
        if c.model:
            rec.inputs["model"] = str(Path(c.model).resolve())
            rec.inputs["model_hash"] = file_hash(c.model)
        with rec.timer("lammps"), _Progress(c) as progress, open(self.output_files["screen"], "w") as screen:

            def on_line(line: str) -> None:
                screen.write(line)
                progress.feed(line)

            res = run_lammps(
                input_file,
                self.lammps_variables(elements, restart),
                cwd=self.outdir,
                nprocs=c.nprocs,
                env={"OMP_NUM_THREADS": str(c.threads)},
                on_line=on_line,
            )
        if self.output_files["restart"].is_file():
            (self.outdir / "restart.key").write_text(self._restart_key())
        self.results = self._collect(res, elements, limits, restart)
        rec.results = self.results
        rec.outputs = {k: str(p) for k, p in self.output_files.items() if p.exists()}
        write_summary(self.outdir, rec)
        return self.results

    def _restart_key(self) -> str:
        """Return the settings that the equilibrated state depends on."""
        d = self._config_dict()
        for k in ("steps", "dump_every", "dump_format", "thermo", "nprocs", "threads", "input"):
            d.pop(k, None)
        return repr(sorted(d.items()))

    def _collect(self, res, elements: list[str], limits: dict[str, float], restart: bool) -> dict:
        from mlff2d.lammps.run import read_thermo

        c = self.config
        runs = read_thermo(self.output_files["log"])
        prod = runs[-1]
        n_atoms = len(self.atoms)
        e = prod["TotEng"] / n_atoms
        t_ps = prod["Time"]
        drift = float(np.polyfit(t_ps, e, 1)[0]) if len(e) > 2 else float("nan")
        loop = res.loop_times()[-1]
        m = re.search(r"^NVE: etotal (\S+) -> (\S+) eV", res.output, re.M)
        out = {
            "complete": self.count_frames() >= self.expected_frames(),
            "resumed_from_restart": restart,
            "n_atoms": n_atoms,
            "elements": elements,
            "defect_center_A": [float(x) for x in self.atoms.info.get("defect_center", [])] or None,
            "trajectory": TRAJ_FILES[c.dump_format] if c.dump_every else None,
            "trajectory_format": c.dump_format,
            "velocity_unit": "Angstrom/ps",
            "frames": self.count_frames(),
            "dt_fs": c.dt,
            "dump_every": c.dump_every,
            "production_ps": c.steps * c.dt * 1e-3,
            "mean_temperature_K": float(prod["Temp"].mean()),
            "nve_drift_meV_per_atom_per_ps": 1e3 * drift,
            "nve_etotal_start_end_eV": [float(m.group(1)), float(m.group(2))] if m else None,
            "production_seconds": loop["seconds"],
            "ns_per_day": c.steps * c.dt * 1e-6 / max(loop["seconds"], 1e-12) * 86400,
            "ms_per_step": 1e3 * loop["seconds"] / max(loop["steps"], 1),
            **limits,
        }
        return out


class _Progress:
    """Rich progress bar fed with LAMMPS screen lines (thermo rows give the step)."""

    _ROW = re.compile(r"^\s+(\d+)\s+[-\d.]")

    def __init__(self, config: MDConfig) -> None:
        self.total = config.equil_steps + config.steps
        self.done = 0
        self.prev: int | None = None

    def __enter__(self) -> _Progress:
        from rich.progress import Progress

        self.bar = Progress(transient=True)
        self.bar.__enter__()
        self.task = self.bar.add_task("LAMMPS MD steps", total=self.total)
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def feed(self, line: str) -> None:
        """Advance by the step difference between consecutive thermo rows of one run."""
        if line.lstrip().startswith("Step"):
            self.prev = None
            return
        m = self._ROW.match(line)
        if m:
            step = int(m.group(1))
            if self.prev is not None:
                self.done += max(step - self.prev, 0)
            self.prev = step
            self.bar.update(self.task, completed=min(self.done, self.total))
