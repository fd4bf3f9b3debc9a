"""MD trajectories for dynasor: format registry, sampling metadata, radial shells.

Two formats are read, both written by LAMMPS in ``metal`` units (velocities in Å/ps):

=================  ===============================================  =======================
name               LAMMPS command                                   dynasor reader
=================  ===============================================  =======================
``extxyz``         ``dump d all extxyz K traj.extxyz``              ``extxyz`` (streams)
``lammps-dump``    ``dump d all custom K traj.lammpstrj id type     ``ase`` (ASE's reader)
                   x y z vx vy vz``
=================  ===============================================  =======================

A LAMMPS custom dump goes through dynasor's ASE reader because dynasor's own
``lammps_internal`` reader takes the bounding box of a tilted (hexagonal) box for its cell
(59.76 Å instead of 39.84 Å for 12×12 WSe2), which breaks the q-point commensurability check.
ASE's reader keeps the whole file in memory: use ``extxyz`` for long runs of large cells.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from ase import Atoms
from numpy.typing import NDArray

from mlff2d.errors import InputError
from mlff2d.structures.shells import distances_from, shell_edges
from mlff2d.units import PS_TO_FS, nyquist_thz, resolution_thz

logger = logging.getLogger(__name__)

TrajFormat = Literal["extxyz", "lammps-dump"]


@dataclass(frozen=True)
class FormatSpec:
    """How dynasor reads one trajectory format.

    Attributes
    ----------
    dynasor_format
        ``trajectory_format`` passed to :class:`dynasor.Trajectory`.
    time_unit
        Time unit of the velocities in the file (``None``: the reader converts them).
    """

    dynasor_format: str
    time_unit: str | None


#: format name -> how dynasor reads it (LAMMPS metal units).
TRAJECTORY_FORMATS: dict[str, FormatSpec] = {
    "extxyz": FormatSpec("extxyz", "ps"),
    "lammps-dump": FormatSpec("ase", None),
}


@dataclass
class MDTrajectory:
    """A trajectory file with its sampling.

    Attributes
    ----------
    path
        The file.
    fmt
        Key of :data:`TRAJECTORY_FORMATS`.
    dt_fs
        MD time step (fs).
    stride
        MD steps between two frames in the file.
    n_frames
        Frames in the file.
    n_atoms
        Atoms per frame.
    """

    path: Path
    fmt: str
    dt_fs: float
    stride: int
    n_frames: int
    n_atoms: int

    @property
    def frame_dt_fs(self) -> float:
        """Time between two frames (fs)."""
        return self.dt_fs * self.stride

    def nyquist_thz(self) -> float:
        """Nyquist frequency of the sampling (THz)."""
        return nyquist_thz(self.dt_fs, self.stride)

    def resolution_thz(self, n_frames: int | None = None) -> float:
        """Frequency resolution (THz) of ``n_frames`` consecutive frames (default all)."""
        return resolution_thz(self.dt_fs, self.stride, n_frames or self.n_frames)

    def open(
        self,
        atomic_indices: dict[str, NDArray[np.int64]] | None = None,
        start: int = 0,
        stop: int | None = None,
        properties: str | list[str] | None = None,
    ):
        """Open a :class:`dynasor.Trajectory` over frames ``[start, stop)``.

        ``atomic_indices`` None keeps the file order as one atom type (what the spectral energy
        density needs); a dict by element is what the structure factors need.
        """
        from dynasor import Trajectory

        spec = TRAJECTORY_FORMATS[self.fmt]
        return Trajectory(
            str(self.path),
            trajectory_format=spec.dynasor_format,
            atomic_indices=atomic_indices,
            time_unit=spec.time_unit,
            frame_start=start,
            frame_stop=stop,
            properties=properties,
        )


#: How to write a trajectory these readers understand.
_HINT = "write it with LAMMPS `dump extxyz` or `dump custom ... id type x y z vx vy vz`"


def detect_format(path: Path) -> str:
    """Trajectory format from the first line: ``ITEM: TIMESTEP`` or an atom count.

    Raises
    ------
    InputError
        If the first line is neither (not a trajectory, or binary).
    """
    with open(path, "rb") as fh:
        first = fh.readline(256).decode(errors="replace").strip()
    if first.startswith("ITEM:"):
        return "lammps-dump"
    if first.isdigit():
        return "extxyz"
    raise InputError(f"{path} is not a trajectory: cannot tell its format from its first line", _HINT)


def _frame_headers(path: Path, fmt: str, n_atoms: int) -> str:
    """Header lines of the first two frames (atom lines skipped)."""
    out = []
    with open(path) as fh:
        for _ in range(2):
            if fmt == "extxyz":
                out += [fh.readline(), fh.readline()]
            else:
                while (line := fh.readline()) and not line.startswith("ITEM: ATOMS"):
                    out.append(line)
            for _ in range(n_atoms):
                fh.readline()
    return "".join(out)


def _scan(path: Path, fmt: str) -> tuple[int, int, list[int], list[float]]:
    """(n_frames, n_atoms, time steps and times (LAMMPS units) of the first two frames)."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 12).decode(errors="replace")
    if fmt == "lammps-dump":
        n_atoms = int(re.search(r"ITEM: NUMBER OF ATOMS\s+(\d+)", head).group(1))
        marker: bytes | None = b"ITEM: TIMESTEP"
        step_re, time_re = r"ITEM: TIMESTEP\s+(\d+)", r"ITEM: TIME\s+([-+.\deE]+)"
    else:
        n_atoms = int(head.split("\n", 1)[0])
        marker = None
        step_re, time_re = r"Timestep=(\d+)", r"Time=([-+.\deE]+)"
    text = _frame_headers(path, fmt, n_atoms)
    steps = [int(s) for s in re.findall(step_re, text)[:2]]
    times = [float(t) for t in re.findall(time_re, text)[:2]]
    n = 0
    with open(path, "rb") as fh:
        tail = b""
        for chunk in iter(lambda: fh.read(1 << 24), b""):
            if marker is None:
                n += chunk.count(b"\n")
            else:
                # the carried tail is shorter than the marker: no match is counted twice
                buf = tail + chunk
                n += buf.count(marker)
                tail = buf[-(len(marker) - 1) :]
    n_frames = n if marker is not None else n // (n_atoms + 2)
    return n_frames, n_atoms, steps, times


def load_trajectory(
    path: str | Path, dt_fs: float | None = None, stride: int | None = None, fmt: str | None = None
) -> MDTrajectory:
    """Describe a trajectory file: format, frames, time step and stride.

    Parameters
    ----------
    path
        The trajectory file.
    dt_fs
        MD time step (fs); default from the ``Time`` fields of the dump (LAMMPS ``metal`` units).
    stride
        MD steps between frames; default the difference of the first two time steps in the file.
    fmt
        Key of :data:`TRAJECTORY_FORMATS`; default detected from the first line.

    Raises
    ------
    InputError
        If the file is missing or unreadable, has fewer than 4 frames, or the time step is unknown.
    """
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p} is a folder, not a trajectory file", "give the dump in it (traj.extxyz)")
    if not p.is_file():
        raise InputError(f"trajectory not found: {p}", "give the dump written by `mlff2d md`")
    fmt = fmt or detect_format(p)
    if fmt not in TRAJECTORY_FORMATS:
        raise InputError(f"unknown trajectory format '{fmt}'", f"use one of {list(TRAJECTORY_FORMATS)}")
    try:
        n_frames, n_atoms, steps, times = _scan(p, fmt)
    except (ValueError, AttributeError, IndexError) as exc:
        raise InputError(
            f"{p} is not a readable {fmt} trajectory ({type(exc).__name__} in its frame headers)", _HINT
        ) from None
    if stride is None and len(steps) == 2:
        stride = steps[1] - steps[0]
    if dt_fs is None and len(times) == 2 and len(steps) == 2 and steps[1] > steps[0]:
        # LAMMPS writes the time in its units: ps for `units metal`
        dt_fs = round((times[1] - times[0]) * PS_TO_FS / (steps[1] - steps[0]), 6)
        logger.info("time step %g fs from the Time fields of the dump (metal units)", dt_fs)
    if dt_fs is None or stride is None or stride <= 0 or dt_fs <= 0:
        raise InputError(
            f"time step or stride of {p} unknown (dt_fs={dt_fs}, stride={stride})",
            "pass --dt-fs and --stride",
        )
    if n_frames < 4:
        raise InputError(f"{p} has {n_frames} frames", "run the MD longer or dump more often")
    traj = MDTrajectory(p, fmt, float(dt_fs), int(stride), n_frames, n_atoms)
    logger.info(
        "%s: %d frames of %d atoms every %g fs (dt %g fs × stride %d, %s); Nyquist %.2f THz, "
        "resolution of the whole run %.4f THz",
        p.name,
        n_frames,
        n_atoms,
        traj.frame_dt_fs,
        traj.dt_fs,
        traj.stride,
        fmt,
        traj.nyquist_thz(),
        traj.resolution_thz(),
    )
    return traj


def check_structure(traj: MDTrajectory, atoms: Atoms) -> None:
    """Check that ``atoms`` (the reference structure) matches the trajectory's atoms.

    Raises
    ------
    InputError
        If the atom counts differ.
    """
    if len(atoms) != traj.n_atoms:
        raise InputError(
            f"the structure has {len(atoms)} atoms, the trajectory {traj.n_atoms}",
            "pass the cell the MD was started from with --structure",
        )


def reference_structure(traj: MDTrajectory, atoms: Atoms) -> Atoms:
    """Return the reference structure in the trajectory's atom order.

    An extxyz trajectory names the element of every atom: if its order differs from
    ``atoms`` (a cell built by LAMMPS rather than read from ``--structure``), the first frame
    is used for elements and positions, keeping ``defect_center`` and ``supercell`` from
    ``atoms.info``.

    Raises
    ------
    InputError
        If the atom counts differ.
    """
    check_structure(traj, atoms)
    if traj.fmt != "extxyz":
        return atoms
    from ase.io import read

    first = read(traj.path, index=0, format="extxyz")
    if first.get_chemical_symbols() == atoms.get_chemical_symbols():
        return atoms
    logger.warning(
        "the atom order of %s differs from the structure: elements and positions "
        "from its first frame, defect_center from the structure",
        traj.path.name,
    )
    first.info = {k: v for k, v in atoms.info.items() if k in ("defect_center", "supercell")}
    first.calc = None
    return first


def element_indices(atoms: Atoms) -> dict[str, NDArray[np.int64]]:
    """Element → atom indices, in :func:`mlff2d.structures.species_order` order."""
    from mlff2d.structures import species_order

    sym = np.array(atoms.get_chemical_symbols())
    return {s: np.flatnonzero(sym == s) for s in species_order(atoms)}


#: In-plane minimum-image distances from the defect: the shared definition of the shells.
inplane_distances = distances_from


def radial_shells(
    distances: NDArray[np.float64], width: float
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Shell edges ``0, w, 2w, ...`` covering all distances and each atom's shell index.

    Shell k holds distances in ``[k w, (k+1) w)``.

    Returns
    -------
    edges
        (n_shells + 1,) Å.
    index
        (n_atoms,) shell of each atom.
    """
    edges = shell_edges(distances, width)
    n = len(edges) - 1
    index = np.clip(np.searchsorted(edges, distances, side="right") - 1, 0, n - 1)
    return edges, index.astype(np.int64)
