"""MD of a (defective) 2D supercell with LAMMPS: ``lammps_inputs/in.wse2_defect`` driven from Python.

:class:`MDRun` writes the cell (built by :func:`mlff2d.lammps.workflow.build_cell`: any 2H MX2,
any defect, or a structure file), runs ``lmp`` (or ``mpirun -np N lmp``) on ``in.wse2_defect`` with
``-var data`` and collects the results. Stages: minimise → Langevin equilibration at T →
write_restart → NVE production dumping positions and velocities every ``dump_every`` steps
(extxyz, Å and Å/ps).

A run stopped during production (even by ``kill -9``) restarts the production from
``equilibrated.restart`` when ``restart.key`` says that the equilibrated state was made with the
same settings and model; the key is written as soon as the input prints that the restart file is
on disk. ``force=True`` starts again. The folder is locked while LAMMPS runs (the lock passes to
LAMMPS, so a rerun waits for the LAMMPS of a killed run to stop before rewriting its files).
Whether a folder is finished is decided by :class:`mlff2d.lammps.workflow.MDWorkflow`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from mlff2d.config import to_dict
from mlff2d.errors import CalculationFailed
from mlff2d.lammps.workflow import TRAJ_FILES, MDResult, MDSettings, count_frames
from mlff2d.runinfo import RunRecord, atomic_write_text, file_hash, folder_lock

logger = logging.getLogger(__name__)

RESTART = "equilibrated.restart"
RESTART_KEY = "restart.key"
DATA = "system.data"
STRUCTURE = "structure.extxyz"
LOG = "log.lammps"
SCREEN = "lammps.out"
#: what ``in.wse2_defect`` prints once ``equilibrated.restart`` is written.
RESTART_WRITTEN = "RESTART: written"
#: settings that do not change the equilibrated state.
_PRODUCTION_ONLY = ("steps", "dump_every", "dump_format", "thermo", "nprocs", "threads", "input")


class MDRun:
    """One LAMMPS MD run in an output folder.

    Parameters
    ----------
    settings
        The settings.
    outdir
        Output folder: ``system.data``, ``structure.extxyz`` (with ``defect_center``),
        ``log.lammps``, ``lammps.out``, ``equilibrated.restart`` (+ ``restart.key``), the trajectory.
    atoms
        The cell (ASE Atoms, from :func:`mlff2d.lammps.workflow.build_cell`).
    force
        Start from scratch even if an equilibrated restart is there.
    progress
        Show a progress bar of the MD steps.
    """

    def __init__(
        self, settings: MDSettings, outdir: str | Path, atoms: Any, force: bool = False, progress: bool = True
    ) -> None:
        self.settings = settings
        self.outdir = Path(outdir)
        self.atoms = atoms
        self.force = force
        self.progress = progress

    @property
    def trajectory(self) -> Path | None:
        """The production trajectory file (``None`` without dumps)."""
        s = self.settings
        return self.outdir / TRAJ_FILES[s.dump_format] if s.dump_every else None

    def write_system(self) -> list[str]:
        """Write ``system.data`` + ``structure.extxyz``; return the element of each atom type."""
        from mlff2d.lammps.run import write_data
        from mlff2d.structures import write_structure

        write_structure(self.atoms, self.outdir / STRUCTURE, fmt="extxyz")
        return write_data(self.atoms, self.outdir / DATA)

    def lammps_variables(self, elements: list[str], restart: bool) -> dict[str, Any]:
        """``-var`` values for ``in.wse2_defect``."""
        s = self.settings
        v: dict[str, Any] = {
            "pair": s.pair,
            "data": DATA,
            "elements": " ".join(elements),
            "defect": s.defect_name or "none",
            "T": s.temperature,
            "dt": s.dt,
            "seed": s.seed,
            "tdamp": s.tdamp,
            "minimize": int(s.minimize),
            "equil": s.equil_steps,
            "steps": s.steps,
            "dump_every": s.dump_every,
            "dump_format": s.dump_format,
            "thermo": s.thermo,
            "mace_opts": s.mace_options,
            "prefix": "",
        }
        if s.model:
            v["model"] = str(Path(s.model).resolve())
        if restart:
            v["restart"] = RESTART
        return v

    def restart_key(self) -> str:
        """The settings (and model hash) that the equilibrated state depends on."""
        d = to_dict(self.settings)
        for k in _PRODUCTION_ONLY:
            d.pop(k, None)
        if self.settings.model is not None and Path(self.settings.model).is_file():
            d["model_hash"] = file_hash(self.settings.model)
        return repr(sorted(d.items()))

    def can_resume(self) -> bool:
        """True if an equilibrated restart made with the same settings is there (and not ``force``)."""
        key = self.outdir / RESTART_KEY
        return (
            not self.force
            and (self.outdir / RESTART).is_file()
            and key.is_file()
            and key.read_text() == self.restart_key()
        )

    def run(self, record: RunRecord) -> MDResult:
        """Run (or resume) the MD; timings go into ``record``; return the result."""
        from mlff2d.lammps.run import run_lammps

        s = self.settings
        elements = self.write_system()
        limits = s.spectral_limits()
        if limits:
            logger.info(
                "sampling every %g fs: Nyquist frequency %.2f THz, resolution %.4f THz "
                "(whole production run)",
                s.dt * s.dump_every,
                limits["nyquist_THz"],
                limits["resolution_THz"],
            )
        restart = self.can_resume()
        if restart:
            logger.info("resuming production from %s", self.outdir / RESTART)
        else:  # the restart file is about to be rewritten: no key may vouch for it meanwhile
            (self.outdir / RESTART_KEY).unlink(missing_ok=True)
        with (
            record.timer("lammps"),
            folder_lock(self.outdir) as lock,
            _Progress(s, self.progress) as progress,
            open(self.outdir / SCREEN, "w") as screen,
        ):

            def on_line(line: str) -> None:
                screen.write(line)
                progress.feed(line)
                if line.startswith(RESTART_WRITTEN):
                    self._write_restart_key()

            res = run_lammps(
                s.input_file(),
                self.lammps_variables(elements, restart),
                cwd=self.outdir,
                nprocs=s.nprocs,
                env={"OMP_NUM_THREADS": str(s.threads)},
                on_line=on_line,
                pass_fds=(lock,),
            )
        self._write_restart_key()  # inputs that do not print RESTART_WRITTEN
        result = self._collect(res, elements, limits, restart)
        if not result.complete:  # LAMMPS does not stop when a dump cannot be written
            raise CalculationFailed(
                f"the trajectory {result.trajectory} has {result.frames} of {s.expected_frames} frames",
                "is the disk full? free space and run again (the production restarts from the restart file)",
            )
        return result

    def _write_restart_key(self) -> None:
        """Record the settings of ``equilibrated.restart`` next to it (if it exists)."""
        if (self.outdir / RESTART).is_file():
            atomic_write_text(self.outdir / RESTART_KEY, self.restart_key())

    def _collect(self, res: Any, elements: list[str], limits: dict[str, float], restart: bool) -> MDResult:
        """The result from the thermo log and the screen output of the finished run."""
        from mlff2d.lammps.run import read_thermo

        s, o = self.settings, self.outdir
        prod = read_thermo(o / LOG)[-1]
        n_atoms = len(self.atoms)
        e = prod["TotEng"] / n_atoms
        drift = 1e3 * float(np.polyfit(prod["Time"], e, 1)[0]) if len(e) > 2 else None
        loop = res.loop_times()[-1]
        m = re.search(r"^NVE: etotal (\S+) -> (\S+) eV", res.output, re.M)
        frames = count_frames(self.trajectory, s.dump_format)
        center = [float(x) for x in self.atoms.info.get("defect_center", [])]
        return MDResult(
            outdir=o,
            structure=o / STRUCTURE,
            data=o / DATA,
            log=o / LOG,
            screen=o / SCREEN,
            trajectory=self.trajectory,
            restart=o / RESTART if (o / RESTART).is_file() else None,
            n_atoms=n_atoms,
            elements=list(elements),
            defect_center_A=center or None,
            frames=frames,
            complete=frames >= s.expected_frames,
            resumed_from_restart=restart,
            trajectory_format=s.dump_format,
            dt_fs=s.dt,
            dump_every=s.dump_every,
            production_ps=s.steps * s.dt * 1e-3,
            mean_temperature_K=float(prod["Temp"].mean()),
            temperature_std_K=float(prod["Temp"].std()),
            nve_drift_meV_per_atom_per_ps=drift,
            nve_etotal_start_end_eV=[float(m.group(1)), float(m.group(2))] if m else None,
            production_seconds=loop["seconds"],
            ns_per_day=s.steps * s.dt * 1e-6 / max(loop["seconds"], 1e-12) * 86400,
            ms_per_step=1e3 * loop["seconds"] / max(loop["steps"], 1),
            nyquist_THz=limits.get("nyquist_THz"),
            resolution_THz=limits.get("resolution_THz"),
        )


class _Progress:
    """Rich progress bar fed with LAMMPS screen lines (thermo rows give the step); off if not ``enabled``."""

    _ROW = re.compile(r"^\s+(\d+)\s+[-\d.]")

    def __init__(self, settings: MDSettings, enabled: bool = True) -> None:
        self.total = settings.equil_steps + settings.steps
        self.enabled = enabled
        self.done = 0
        self.prev: int | None = None

    def __enter__(self) -> _Progress:
        from rich.progress import Progress

        self.bar = Progress(transient=True, disable=not self.enabled)
        self.bar.__enter__()
        self.task = self.bar.add_task("LAMMPS MD steps", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
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
