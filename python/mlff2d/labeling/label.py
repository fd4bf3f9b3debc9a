"""Labelling runs: one calculation per structure through a :class:`LabelStore`."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from mlff2d.errors import InputError
from mlff2d.labeling.store import LabelStore
from mlff2d.reference.registry import Labeller
from mlff2d.structures.io import structure_key

logger = logging.getLogger(__name__)

#: info keys of a structure that are carried into its label file.
CARRIED_INFO = (
    "config_type",
    "defect",
    "defect_center",
    "strain",
    "rattle",
    "supercell",
    "formula",
    "md_temperature",
    "kpts",
    "code_version",
)


@dataclass
class LabelReport:
    """Outcome of a labelling run.

    Attributes
    ----------
    keys
        Store key of every input structure, in input order.
    computed, skipped, failed, other_shard, pending
        Counts: computed now, already in the store, failed now or before, left to other shards,
        left to compute (``compute=False``).
    wall_s
        Wall time of the computations done now (s).
    """

    keys: list[str] = field(default_factory=list)
    computed: int = 0
    skipped: int = 0
    failed: int = 0
    other_shard: int = 0
    pending: int = 0
    wall_s: float = 0.0


def attach_labels(
    atoms: Atoms,
    labeller: Labeller,
    wall_s: float,
    calc: Calculator | None = None,
    cpu_s: float | None = None,
) -> Atoms:
    """A copy of ``atoms`` carrying the calculator results as ``REF_*`` keys.

    ``REF_energy`` (eV), ``REF_forces`` (eV/Å, per atom), ``REF_stress`` (eV/Å³, Voigt
    xx yy zz yz xz xy, if the calculator gives it), plus ``source``, ``settings_hash`` and
    ``wall_s`` (and ``cpu_s``, the CPU time of this process, which does not depend on how busy the
    machine was). ``calc`` is the calculator holding the results (default ``labeller.calc``).

    ``REF_energy`` is the force-consistent energy: with smeared occupations (DFT) the forces and
    stress are derivatives of the free energy E − TS, not of the σ → 0 extrapolated energy, and a
    force field has to fit one potential energy surface. Where the two differ (partly occupied
    defect states: 2–3 meV/atom for V_W in WSe₂ with Fermi–Dirac 0.05 eV) the extrapolated value is
    kept as ``energy_sigma0`` (eV) for formation energies.
    """
    calc = labeller.calc if calc is None else calc
    out = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    out.info = {k: atoms.info[k] for k in CARRIED_INFO if k in atoms.info}
    out.info.setdefault("config_type", "pristine")
    energy = float(calc.results["energy"])
    free = float(calc.results.get("free_energy", energy))
    out.info["REF_energy"] = free
    if free != energy:
        out.info["energy_sigma0"] = energy
    out.arrays["REF_forces"] = np.asarray(calc.results["forces"], dtype=float).copy()
    if "stress" in calc.results:
        out.info["REF_stress"] = np.asarray(calc.results["stress"], dtype=float).reshape(-1)[:6].copy()
    out.info["source"] = labeller.source
    out.info["settings_hash"] = labeller.settings_hash
    out.info["wall_s"] = round(wall_s, 4)
    if cpu_s is not None:
        out.info["cpu_s"] = round(cpu_s, 4)
    return out


def parse_shard(text: str | None) -> tuple[int, int]:
    """Parse ``"i/N"`` (0 ≤ i < N) into ``(i, N)``; None means ``(0, 1)``."""
    if not text:
        return (0, 1)
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise InputError(f"cannot read shard '{text}'", "write it as i/N, e.g. 3/16") from None
    if not (n >= 1 and 0 <= i < n):
        raise InputError(f"shard '{text}' is out of range", "use 0 ≤ i < N")
    return (i, n)


def label_structures(
    structures: Sequence[Atoms],
    labeller: Labeller,
    store: LabelStore,
    shard: tuple[int, int] = (0, 1),
    retry_failed: bool = False,
    progress: bool = True,
    compute: bool = True,
) -> LabelReport:
    """Label every structure not yet in ``store``; failures are recorded, not dropped.

    Parameters
    ----------
    structures
        Structures to label.
    labeller
        Calculator + settings (:func:`mlff2d.reference.registry.get_labeller`).
    store
        Where each result is written as soon as it is finished.
    shard
        ``(i, N)``: only keys with ``hash % N == i`` are computed here (Slurm arrays).
        Within a run, structures are computed smallest first.
    retry_failed
        Recompute structures whose earlier calculation failed.
    progress
        Show a progress bar.
    compute
        False only counts what is missing (``LabelReport.pending``) and computes nothing.

    Returns
    -------
    LabelReport
    """
    from rich.progress import Progress

    rep, todo = _plan(structures, labeller.settings_hash, store, shard, retry_failed)
    if not compute:
        rep.pending = len(todo)
        return rep
    logger.info(
        "%d structures: %d to compute, %d already in %s, %d for other shards",
        len(rep.keys),
        len(todo),
        rep.skipped,
        store.root,
        rep.other_shard,
    )
    t_all = time.perf_counter()
    with Progress(disable=not progress or not todo, transient=True) as bar:
        task = bar.add_task(f"labelling ({labeller.source})", total=len(todo))
        for key, atoms in todo:
            if store.status(key) == "done":  # finished meanwhile by another worker
                rep.skipped += 1
            else:
                _label_one(key, atoms, labeller, store, rep, len(todo))
            bar.advance(task)
    rep.wall_s = time.perf_counter() - t_all
    return rep


def _plan(
    structures: Sequence[Atoms], shash: str, store: LabelStore, shard: tuple[int, int], retry_failed: bool
) -> tuple[LabelReport, list[tuple[str, Atoms]]]:
    """Keys of all structures, counts of those done or elsewhere, and the work left (smallest first)."""
    rep = LabelReport()
    todo: list[tuple[str, Atoms]] = []
    for atoms in structures:
        key = structure_key(atoms, shash)
        rep.keys.append(key)
        st = store.status(key)
        if int(key, 16) % shard[1] != shard[0]:
            rep.other_shard += 1
        elif st == "done" or (st == "failed" and not retry_failed):
            rep.skipped += 1
            rep.failed += st == "failed"
        else:
            todo.append((key, atoms))
    todo.sort(key=lambda item: len(item[1]))  # cheapest first (stable): small cells land early
    return rep, todo


def _label_one(
    key: str, atoms: Atoms, labeller: Labeller, store: LabelStore, rep: LabelReport, n_todo: int
) -> None:
    """Compute one label and write it (or its failure, with the reason) to the store at once."""
    work = atoms.copy()
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        calc = labeller.compute(work, store.workdir(key))
    except Exception as exc:  # noqa: BLE001 - every failure is recorded with its reason
        text = str(exc).strip()
        reason = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
        meta = {"formula": atoms.get_chemical_formula(), "config_type": atoms.info.get("config_type")}
        store.write_failure(key, reason, meta)
        logger.warning("label %s failed: %s", key, reason)
        rep.failed += 1
        return
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    store.write(key, attach_labels(work, labeller, wall, calc, cpu))
    rep.computed += 1
    # one line per label for slow (DFT) calculations; the progress bar is enough for SW
    logger.log(
        logging.INFO if wall > 1.0 else logging.DEBUG,
        "label %s: %s, %d atoms, %.1f s wall, %.1f s CPU (%d/%d done)",
        key,
        atoms.info.get("config_type", "?"),
        len(atoms),
        wall,
        cpu,
        rep.computed + rep.failed,
        n_todo,
    )
