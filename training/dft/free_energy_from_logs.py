"""Repair GPAW labels written before mlff2d stored the force-consistent energy (2026-12-03).

Labels made before then hold GPAW's σ → 0 extrapolated energy as ``REF_energy``, while their
forces and stress are derivatives of the free energy E − TS (Fermi–Dirac smearing). This reads
both numbers from each calculation's ``work/<key>/gpaw.txt`` and rewrites the label with
``REF_energy`` = free energy and ``energy_sigma0`` = extrapolated energy (eV), as
:func:`mlff2d.labeling.label.attach_labels` now does. A label whose ``REF_energy`` does not equal
the log's extrapolated energy (1e-5 eV) is left alone and reported; labels without a log are
listed so they can be checked (relabel a few in a scratch store and compare).

    python training/dft/free_energy_from_logs.py data/wse2_gpaw_pbe/labels [--dry-run]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from mlff2d.labeling import LabelStore

_FREE = re.compile(r"^\s*Free energy:\s+(-?\d+\.\d+)", re.M)
_EXTRA = re.compile(r"^\s*Extrapolated:\s+(-?\d+\.\d+)", re.M)


def main() -> None:
    """Rewrite the labels of one store (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store", type=Path)
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    store = LabelStore(args.store)
    fixed = same = 0
    no_log, mismatch = [], []
    for key in store.keys():
        atoms = store.read(key)
        if "energy_sigma0" in atoms.info:
            same += 1
            continue
        log = store.workdir(key) / "gpaw.txt"
        if not log.is_file():
            no_log.append(f"{key} {atoms.info.get('config_type')} {len(atoms)} atoms")
            continue
        text = log.read_text()
        free, extra = float(_FREE.findall(text)[-1]), float(_EXTRA.findall(text)[-1])
        if abs(atoms.info["REF_energy"] - extra) > 1e-5:
            mismatch.append(f"{key}: REF_energy {atoms.info['REF_energy']:.6f} vs log {extra:.6f} eV")
            continue
        if free == extra:
            same += 1
            continue
        dmev = (extra - free) / len(atoms) * 1e3
        print(f"{key} {atoms.info.get('config_type'):>8} {len(atoms):3d} atoms: E0 − F = {dmev:.2f} meV/atom")
        atoms.info["REF_energy"] = free
        atoms.info["energy_sigma0"] = extra
        if not args.dry_run:
            store.write(key, atoms)
        fixed += 1
    print(f"{fixed} labels rewritten, {same} unchanged (free = extrapolated), {len(no_log)} without a log")
    for line in no_log:
        print("  no log:", line)
    for line in mismatch:
        print("  NOT CHANGED:", line)


if __name__ == "__main__":
    main()
