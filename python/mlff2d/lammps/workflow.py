"""The ``md`` stage: settings, typed result and workflow of a LAMMPS MD run (``mlff2d md``).

:class:`MDSettings` holds every option of ``mlff2d md`` (the single source of their defaults),
:class:`MDWorkflow` runs :class:`mlff2d.lammps.md.MDRun` in one output folder and returns an
:class:`MDResult`. A folder is finished when the base's check holds (same settings, same input
files, every output there) and the trajectory has all its frames; a run stopped during production
resumes from ``equilibrated.restart`` (see :mod:`mlff2d.lammps.md`).

This module imports no LAMMPS, torch or ASE at the top: the ``mlff2d md`` command builds its
options from it.

Example
-------
>>> from mlff2d.lammps.workflow import MDSettings, MDWorkflow  # doctest: +SKIP
>>> s = MDSettings(supercell=(6, 6), pair="sw", equil_steps=100, steps=200)  # doctest: +SKIP
>>> res = MDWorkflow(s, "runs/md").run()  # doctest: +SKIP
>>> res.trajectory, res.nve_drift_meV_per_atom_per_ps  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from mlff2d.errors import InputError
from mlff2d.runinfo import RunRecord
from mlff2d.settings import Settings, setting
from mlff2d.workflow import StageResult, Workflow

#: trajectory file name by dump format.
TRAJ_FILES = {"extxyz": "traj.extxyz", "lammps": "traj.lammpstrj"}
#: default LAMMPS input (in ``lammps_inputs/``).
DEFAULT_INPUT = "in.wse2_defect"


@dataclass
class MDSettings(Settings):
    """Settings of ``mlff2d md`` (recipe keys = option names with ``_``).

    Attributes
    ----------
    material
        ``WSe2``, ``MoS2``, ... or a structure file (extxyz, LAMMPS data...).
    supercell
        In-plane repetitions (N, M) of the primitive cell (ignored for a structure file).
    defect
        Defect name (``V_Se``, ``V_Se2``, ``V_W``, ``Se_W``, ``W_Se``, ``Mo_W``...) or ``"none"``.
    pair
        ``mace`` (the plugin, needs ``model``) or ``sw`` (the SW teacher).
    model
        Exported ``*.model-lammps.pt`` for ``pair mace``.
    mace_options
        Extra ``pair_style mace`` keywords.
    temperature
        Langevin temperature (K); the velocities start at twice it.
    dt
        Time step (fs).
    equil_steps, steps
        Langevin equilibration and NVE production steps.
    dump_every
        Production dump interval (steps; 0: no trajectory).
    dump_format
        ``extxyz`` (Å, Å/ps; dynasor ``extxyz``) or ``lammps`` (custom text).
    minimize
        Minimise the energy before equilibrating.
    tdamp
        Langevin damping time (fs).
    thermo
        Thermo output interval (steps).
    seed
        Random seed of the initial velocities and the Langevin thermostat.
    nprocs, threads
        MPI ranks (``mpirun -np``) and OpenMP/torch threads per rank.
    input
        LAMMPS input (default ``lammps_inputs/in.wse2_defect``).
    """

    material: str = setting("WSe2", "Formula of a 2H MX2 monolayer, or a structure file.", argument=True)
    supercell: tuple[int, int] = setting(
        (12, 12), "In-plane repetitions N M (ignored when MATERIAL is a structure file).", ge=1
    )
    defect: str = setting("V_Se", "Defect name, or 'none'.")
    pair: Literal["mace", "sw"] = setting("mace", "MACE through the LAMMPS plugin, or the SW teacher.")
    model: Path | None = setting(None, "Exported *.model-lammps.pt (pair mace).")
    mace_options: str = setting("", "Extra pair_style mace keywords, e.g. 'device cuda'.")
    temperature: float = setting(300.0, "Temperature.", unit="K", short="-T", ge=0)
    dt: float = setting(1.0, "Time step.", unit="fs", gt=0)
    equil_steps: int = setting(5000, "Langevin equilibration steps.", ge=0)
    steps: int = setting(10000, "NVE production steps.", ge=0)
    dump_every: int = setting(5, "Dump positions+velocities every N production steps (0: none).", ge=0)
    dump_format: Literal["extxyz", "lammps"] = setting(
        "extxyz", "extxyz (dynasor 'extxyz') or LAMMPS custom text."
    )
    minimize: bool = setting(True, "Minimise the energy before equilibrating.")
    tdamp: float = setting(100.0, "Langevin damping.", unit="fs", gt=0)
    thermo: int = setting(100, "Thermo output interval (steps).", ge=0)
    seed: int = setting(12345, "Random seed (velocities, Langevin).", ge=1)
    nprocs: int = setting(1, "MPI ranks (mpirun -np).", short="-n", ge=1)
    threads: int = setting(1, "OMP/torch threads per rank.", ge=1)
    input: Path | None = setting(None, "LAMMPS input (default lammps_inputs/in.wse2_defect).")

    @property
    def defect_name(self) -> str | None:
        """The defect, ``None`` for ``"none"``."""
        return None if self.defect.lower() == "none" else self.defect

    @property
    def expected_frames(self) -> int:
        """Frames of a complete production trajectory."""
        return self.steps // self.dump_every + 1 if self.dump_every else 0

    def spectral_limits(self) -> dict[str, float]:
        """Nyquist frequency and resolution of the whole production trajectory (THz)."""
        from mlff2d.units import nyquist_thz, resolution_thz

        if not self.dump_every:
            return {}
        n = self.expected_frames
        return {
            "nyquist_THz": nyquist_thz(self.dt, self.dump_every),
            "resolution_THz": resolution_thz(self.dt, self.dump_every, max(n - 1, 1)),
        }

    def input_file(self) -> Path:
        """The LAMMPS input that runs (``input`` or the shipped ``in.wse2_defect``)."""
        from mlff2d.lammps.run import inputs_dir

        return Path(self.input).resolve() if self.input else inputs_dir() / DEFAULT_INPUT


@dataclass
class MDResult(StageResult):
    """What ``mlff2d md`` produced.

    Attributes
    ----------
    structure
        The MD cell (``structure.extxyz``, with ``defect_center``): the cell the ``vdos`` and
        ``dispersion`` stages read with the trajectory.
    data
        The same cell as a LAMMPS data file (``system.data``).
    log, screen
        ``log.lammps`` (thermo tables) and ``lammps.out`` (the screen output).
    trajectory
        Production trajectory (positions Å, velocities Å/ps); ``None`` with ``dump_every`` 0.
    restart
        ``equilibrated.restart``, the state a stopped production resumes from (if written).
    n_atoms, elements
        Atoms in the cell; element of each LAMMPS atom type.
    defect_center_A
        Cartesian position of the defect (Å), ``None`` without a defect.
    frames, complete
        Frames in the trajectory; whether it has all of them.
    resumed_from_restart
        The production continued from ``equilibrated.restart``.
    trajectory_format, velocity_unit
        ``extxyz`` or ``lammps``; ``"Angstrom/ps"``.
    dt_fs, dump_every, production_ps
        Time step (fs), dump interval (steps), production length (ps).
    mean_temperature_K, temperature_std_K
        Mean and standard deviation of the NVE temperature (K).
    nve_drift_meV_per_atom_per_ps
        Linear drift of the NVE total energy (meV/atom/ps); ``None`` with under 3 thermo rows.
    nve_etotal_start_end_eV
        Total energy at the start and end of the production (eV), if the input prints it.
    production_seconds, ms_per_step, ns_per_day
        Wall time of the production loop (s), per step (ms), and the simulated ns per day.
    nyquist_THz, resolution_THz
        Nyquist frequency and resolution of the whole trajectory (THz); ``None`` without one.
    """

    structure: Path
    data: Path
    log: Path
    screen: Path
    trajectory: Path | None = None
    restart: Path | None = None
    n_atoms: int = 0
    elements: list[str] | None = None
    defect_center_A: list[float] | None = None  # noqa: N815 - the unit
    frames: int = 0
    complete: bool = False
    resumed_from_restart: bool = False
    trajectory_format: str = "extxyz"
    velocity_unit: str = "Angstrom/ps"
    dt_fs: float = 0.0
    dump_every: int = 0
    production_ps: float = 0.0
    mean_temperature_K: float | None = None  # noqa: N815 - the unit
    temperature_std_K: float | None = None  # noqa: N815 - the unit
    nve_drift_meV_per_atom_per_ps: float | None = None  # noqa: N815 - the unit
    nve_etotal_start_end_eV: list[float] | None = None  # noqa: N815 - the unit
    production_seconds: float = 0.0
    ms_per_step: float = 0.0
    ns_per_day: float = 0.0
    nyquist_THz: float | None = None  # noqa: N815 - the unit
    resolution_THz: float | None = None  # noqa: N815 - the unit

    def describe(self) -> str:
        """One line for the terminal."""
        temp = f"{self.mean_temperature_K:.1f}" if self.mean_temperature_K is not None else "?"
        drift = self.nve_drift_meV_per_atom_per_ps
        line = (
            f"{self.n_atoms} atoms, {self.frames} frames, <T> = {temp} K, NVE drift "
            f"{'?' if drift is None else f'{drift:.3g}'} meV/atom/ps, "
            f"{self.ms_per_step:.1f} ms/step ({self.ns_per_day:.3g} ns/day)"
        )
        if self.nyquist_THz is not None and self.resolution_THz is not None:
            line += (
                f"; sampling every {self.dt_fs * self.dump_every:g} fs: Nyquist "
                f"{self.nyquist_THz:.2f} THz, resolution {self.resolution_THz:.4f} THz"
            )
        return line


def count_frames(path: Path | None, fmt: str) -> int:
    """Frames in a trajectory file (0 if ``path`` is ``None`` or missing)."""
    if path is None or not Path(path).is_file():
        return 0
    marker = "Lattice=" if fmt == "extxyz" else "ITEM: TIMESTEP"
    with open(path, errors="replace") as fh:
        return sum(1 for line in fh if marker in line)


class MDWorkflow(Workflow[MDSettings, MDResult]):
    """``mlff2d md``: minimise, equilibrate at T (Langevin), NVE production with LAMMPS.

    Parameters
    ----------
    settings
        The MD settings.
    outdir
        Output folder (see :class:`MDResult` for its files).
    force
        Start from scratch: ignore a finished run and the equilibrated restart.
    progress
        Show a progress bar of the MD steps.
    """

    command: ClassVar[str] = "md"
    Settings: ClassVar[type[MDSettings]] = MDSettings
    Result: ClassVar[type[MDResult]] = MDResult

    def __init__(self, settings: MDSettings, outdir: str | Path, **kwargs: Any) -> None:
        super().__init__(settings, outdir, **kwargs)
        #: the cell, built by :meth:`check` (ASE Atoms).
        self.atoms: Any = None

    def inputs(self) -> dict[str, Path]:
        """The model, the LAMMPS input and a structure file given as ``material``."""
        out = super().inputs()
        out["input"] = self.settings.input_file()
        if Path(self.settings.material).is_file():
            out["material"] = Path(self.settings.material)
        return out

    def is_finished(self) -> bool:
        """The base's check, and the trajectory holds every frame of the production."""
        if not super().is_finished():
            return False
        res = self.load(self.outdir)
        if res.trajectory is None:
            return True
        return count_frames(res.trajectory, self.settings.dump_format) >= self.settings.expected_frames

    def check(self) -> None:
        """Check the model, the step counts and the input file; build the cell and check it.

        Raises
        ------
        InputError
            For ``pair mace`` without a model, a missing or unreadable model or input file, a model
            that is not a TorchScript export, or ``steps`` not a multiple of ``dump_every``.
        ModelError
            If the model (its card) or the SW teacher lacks an element of the cell.
        StructureError
            If the cell cannot be built or breaks a rule of :func:`mlff2d.validate.check_structure`.
        """
        from mlff2d.validate import check_file, check_structure, export_card

        s = self.settings
        if s.dump_every and s.steps % s.dump_every:
            raise InputError(
                f"--steps ({s.steps}) must be a multiple of --dump-every ({s.dump_every})",
                "change --steps or --dump-every",
            )
        if s.input is not None:
            check_file(s.input, "--input")
        if s.pair == "mace" and s.model is None:
            raise InputError("--pair mace needs --model", "pass --model X.model-lammps.pt, or use --pair sw")
        if s.pair == "mace":
            check_file(s.model, "--model", "torchscript")
            known, by = export_card(s.model).get("elements"), f"model {s.model}"
        else:
            from mlff2d.reference.sw import SW_ELEMENTS

            known, by = SW_ELEMENTS, "the SW teacher"
        self.atoms = build_cell(s)
        check_structure(self.atoms, f"the MD cell ({s.material})", known=known, known_by=by)

    def _run(self, record: RunRecord) -> MDResult:
        from mlff2d.lammps.md import MDRun

        if self.atoms is None:
            self.atoms = build_cell(self.settings)
        run = MDRun(self.settings, self.outdir, self.atoms, force=self.force, progress=self.progress)
        return run.run(record)


def build_cell(settings: MDSettings) -> Any:
    """The MD cell: ``material`` read from a file, or its supercell with the defect (ASE Atoms).

    Raises
    ------
    StructureError
        If the cell cannot be built.
    """
    from mlff2d.structures import make_defect, monolayer, read_structure, supercell

    if Path(settings.material).is_file():
        atoms = read_structure(settings.material)
    else:
        atoms = supercell(monolayer(settings.material), *settings.supercell)
        if settings.defect_name:
            atoms = make_defect(atoms, settings.defect_name)
    return atoms
