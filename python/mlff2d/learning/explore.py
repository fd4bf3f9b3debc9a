"""Exploration for active learning: committee MD of small cells, σ_F per frame, diverse selection.

:func:`committee_md` runs Langevin MD (ASE) with a
:class:`~mlff2d.training.committee.CommitteeCalculator` and records frames with their per-atom
σ_F (eV/Å). :func:`select_frames` keeps the frames whose largest σ_F exceeds a threshold and picks
a diverse subset by farthest-point sampling on :func:`frame_descriptor` (pair-distance histograms
per element pair, the cell's ``config_type`` and log σ_F), starting from the most uncertain frame.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from numpy.typing import NDArray

from mlff2d.structures import make_defect, monolayer, strain, supercell

logger = logging.getLogger(__name__)

#: the defect name of a cell without defect.
PRISTINE = "pristine"
#: pair distances (Å) binned by :func:`frame_descriptor`: range and bin width.
DESCRIPTOR_RANGE = (1.5, 4.5)
DESCRIPTOR_BIN = 0.1


def build_cell(
    material: str, defect: str, size: tuple[int, int], eps: float = 0.0, vacuum: float = 20.0
) -> Atoms:
    """A strained ``size`` supercell of ``material`` with ``defect`` (or ``pristine``) at its centre.

    Parameters
    ----------
    material
        Host formula (``WSe2``).
    defect
        Defect name (``V_Se``...) or :data:`PRISTINE`.
    size
        In-plane supercell (n, m).
    eps
        Biaxial strain (fraction).
    vacuum
        Vacuum along z (Å).
    """
    atoms = strain(supercell(monolayer(material, vacuum=vacuum), *size), eps)
    return atoms if defect == PRISTINE else make_defect(atoms, defect)


def committee_md(
    atoms: Atoms,
    calc: Any,
    temperature: float,
    steps: int,
    interval: int,
    *,
    timestep: float = 1.0,
    friction: float = 0.02,
    seed: int = 0,
    sigma_stop: float | None = None,
) -> list[Atoms]:
    """Langevin MD of ``atoms`` with a committee; every ``interval`` steps a frame with its σ_F.

    Parameters
    ----------
    atoms
        Start structure (not changed).
    calc
        A :class:`~mlff2d.training.committee.CommitteeCalculator` (``forces_std`` per atom).
    temperature
        Langevin temperature (K); the start velocities are drawn at it.
    steps, interval
        MD steps, and steps between recorded frames.
    timestep
        Time step (fs).
    friction
        Langevin friction (1/fs).
    seed
        Seed of the start velocities and the noise.
    sigma_stop
        Stop the run after a frame whose largest σ_F exceeds this (eV/Å): past it the
        trajectory no longer means anything.

    Returns
    -------
    list of ase.Atoms
        The recorded frames (positions at the frame, no calculator): ``arrays["sigma_f"]`` (eV/Å,
        per atom), ``info["sigma_max"]``, ``info["sigma_mean"]`` (eV/Å), ``info["md_step"]``,
        ``info["md_temperature"]`` (K) and the start structure's info.
    """
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import thermalize_momenta

    work = atoms.copy()
    work.calc = calc
    rng = np.random.default_rng(seed)
    thermalize_momenta(work, temperature, rng=rng)
    dyn = Langevin(
        work,
        timestep * units.fs,
        temperature_K=temperature,
        friction=friction / units.fs,
        fixcm=False,
        rng=rng,
    )
    frames: list[Atoms] = []
    done = 0
    while done < steps:
        n = min(interval, steps - done)
        dyn.run(n)
        done += n
        sigma = np.asarray(calc.get_property("forces_std", work), dtype=float)
        snap = Atoms(work.numbers, positions=work.positions, cell=work.cell, pbc=work.pbc)
        snap.info = dict(atoms.info)
        snap.info.update(
            md_step=done,
            md_temperature=float(temperature),
            sigma_max=float(sigma.max()),
            sigma_mean=float(sigma.mean()),
        )
        snap.arrays["sigma_f"] = sigma
        frames.append(snap)
        if sigma_stop is not None and sigma.max() > sigma_stop:
            logger.info("MD stopped at step %d: max σ_F %.2f eV/Å > %.2f", done, sigma.max(), sigma_stop)
            break
    return frames


def committee_md_lammps(
    atoms: Atoms,
    models: Sequence[Path],
    elements: Sequence[str],
    folder: Path,
    temperature: float,
    steps: int,
    interval: int,
    *,
    timestep: float = 1.0,
    friction: float = 0.01,
    seed: int = 0,
) -> tuple[list[int], list[float]]:
    """Langevin MD of ``atoms`` in LAMMPS with a committee (``pair_style mace``, K member files).

    ``lammps_inputs/in.wse2_committee`` on the cell written as a data file, without minimisation:
    velocities drawn at 2T, Langevin at ``temperature`` with damping 1/``friction`` for ``steps``
    steps; the plugin's largest σ_F over the atoms (``compute pair mace``) is read from the thermo
    output every ``interval`` steps.

    Parameters
    ----------
    atoms
        Start structure.
    models
        The committee's exported members (``*.model-lammps.pt``).
    elements
        Their elements in LAMMPS type order.
    folder
        Run folder (data file, log).
    temperature, steps, interval, timestep, friction, seed
        As for :func:`committee_md` (K, steps, steps, fs, 1/fs, -).

    Returns
    -------
    tuple
        The steps (from 0, the start structure) and the largest σ_F at each (eV/Å).
    """
    from mlff2d.lammps.run import inputs_dir, read_thermo, run_lammps, write_data

    folder.mkdir(parents=True, exist_ok=True)
    write_data(atoms, folder / "start.data", elements)
    variables = {
        "inputs": inputs_dir(),
        "models": " ".join(str(Path(m).resolve()) for m in models),
        "elements": " ".join(elements),
        "data": "start.data",
        "T": temperature,
        "dt": timestep,
        "tdamp": 1.0 / friction,
        "seed": seed + 1,
        "minimize": 0,
        "equil": steps,
        "steps": 0,
        "dump_every": 0,
        "thermo": interval,
        "sigma_every": interval,
    }
    run_lammps(inputs_dir() / "in.wse2_committee", variables, cwd=folder)
    thermo = read_thermo(folder / "log.lammps")[0]
    return [int(v) for v in thermo["Step"]], [float(v) for v in thermo["c_committee[2]"]]


def frame_descriptor(frames: Sequence[Atoms], cutoff: float = DESCRIPTOR_RANGE[1]) -> NDArray[np.float64]:
    """A simple descriptor per frame, for farthest-point sampling.

    Per element pair: the histogram of pair distances (bins of :data:`DESCRIPTOR_BIN` Å over
    :data:`DESCRIPTOR_RANGE`) per atom, standardised over the frames; then a one-hot of the
    frame's ``config_type`` and log10 of its largest σ_F (``info["sigma_max"]``, eV/Å).

    Returns
    -------
    numpy.ndarray
        Shape (n_frames, n_features).
    """
    from ase.neighborlist import neighbor_list

    edges = np.arange(DESCRIPTOR_RANGE[0], cutoff + 1e-9, DESCRIPTOR_BIN)
    pairs = sorted({(a, b) for f in frames for a in set(f.numbers) for b in set(f.numbers) if a <= b})
    types = sorted({str(f.info.get("config_type", "?")) for f in frames})
    rows = []
    for f in frames:
        i, j, d = neighbor_list("ijd", f, cutoff)
        zi, zj = np.minimum(f.numbers[i], f.numbers[j]), np.maximum(f.numbers[i], f.numbers[j])
        hist = [np.histogram(d[(zi == a) & (zj == b)], edges)[0] / len(f) for a, b in pairs]
        rows.append(np.concatenate(hist))
    x = np.asarray(rows, dtype=float)
    x = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0) / np.sqrt(x.shape[1])
    onehot = np.array([[float(f.info.get("config_type", "?") == t) for t in types] for f in frames])
    sigma = np.log10([max(float(f.info.get("sigma_max", 1.0)), 1e-6) for f in frames])[:, None]
    return np.hstack([x, onehot, sigma])


def farthest_point(x: NDArray[np.float64], n: int, start: int = 0) -> list[int]:
    """Indices of ``n`` rows of ``x`` chosen by farthest-point sampling from row ``start``."""
    chosen = [start]
    dist = np.linalg.norm(x - x[start], axis=1)
    while len(chosen) < min(n, len(x)):
        k = int(np.argmax(dist))
        chosen.append(k)
        dist = np.minimum(dist, np.linalg.norm(x - x[k], axis=1))
    return chosen


def select_frames(frames: Sequence[Atoms], threshold: float, n: int) -> list[Atoms]:
    """Frames whose largest σ_F exceeds ``threshold`` (eV/Å): at most ``n``, diverse.

    Farthest-point sampling on :func:`frame_descriptor`, from the most uncertain frame; the
    chosen frames are returned in that order.
    """
    above = [f for f in frames if float(f.info["sigma_max"]) > threshold]
    if len(above) <= n:
        return sorted(above, key=lambda f: -float(f.info["sigma_max"]))
    start = int(np.argmax([float(f.info["sigma_max"]) for f in above]))
    return [above[k] for k in farthest_point(frame_descriptor(above), n, start)]


def sigma_of(frames: Sequence[Atoms], calc: Any) -> list[float]:
    """Largest σ_F (eV/Å) of each frame under the committee ``calc``."""
    out = []
    for f in frames:
        work = Atoms(f.numbers, positions=f.positions, cell=f.cell, pbc=f.pbc)
        work.calc = calc
        out.append(float(np.max(calc.get_property("forces_std", work))))
    return out
