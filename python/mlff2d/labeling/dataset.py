"""Dataset recipes: generate structures, label them, split by structure, write extxyz.

A recipe (``training/datasets/<name>.yaml``) lists groups of structures::

    name: wse2_sw_quick
    material: WSe2
    calculator: sw            # a name from mlff2d.reference.registry.CALCULATORS
    profile: null             # optional calculator settings YAML (DFT)
    seed: 0
    split: {train: 0.8, valid: 0.1, test: 0.1}
    groups:
      - {count: 60, supercells: [[2, 2], [3, 3]], strain: [-0.03, 0.03], rattle: [0.01, 0.08]}
      - {count: 40, defect: V_Se, supercells: [[3, 3]], strain: [-0.02, 0.02], rattle: [0.01, 0.06]}
      - {count: 20, kind: md, supercells: [[3, 3]], temperature: 300, interval: 20}

Each group's structures are split train/valid/test separately (stratified by group), so every
config_type appears in every split.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from ase import Atoms
from ase.io import write

from mlff2d.config import from_dict, load_yaml, to_dict
from mlff2d.errors import ConfigError
from mlff2d.labeling.label import label_structures
from mlff2d.labeling.store import LabelStore
from mlff2d.reference.registry import Labeller, get_labeller
from mlff2d.runinfo import RunRecord, atomic_path, atomic_write_text, file_hash, package_versions
from mlff2d.structures import make_defect, monolayer, rattle, strain, supercell

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


@dataclass
class Group:
    """One group of structures in a recipe.

    Attributes
    ----------
    count
        Number of structures.
    kind
        ``"static"`` (strained + rattled cells) or ``"md"`` (snapshots of Langevin MD with the
        SW teacher, then labelled by the recipe's calculator).
    defect
        Defect name (``V_Se``...) or None for pristine.
    supercells
        In-plane sizes, used in turn.
    strain
        Range of biaxial strain (fraction), uniform.
    uniaxial
        Draw exx and eyy independently from ``strain`` instead of one biaxial value.
    rattle
        Range of rattle amplitudes (Å), uniform.
    temperature
        MD temperature (K), ``kind: md`` only.
    interval
        MD steps (1 fs) between snapshots, ``kind: md`` only.
    weight
        Loss weight of the group's structures in training (mace-torch's per-structure
        ``config_weight``, multiplied with its ``config_type_weights``); 1 adds nothing.
    """

    count: int
    kind: str = "static"
    defect: str | None = None
    supercells: list[list[int]] = field(default_factory=lambda: [[3, 3]])
    strain: list[float] = field(default_factory=lambda: [0.0, 0.0])
    uniaxial: bool = False
    rattle: list[float] = field(default_factory=lambda: [0.0, 0.0])
    temperature: float = 300.0
    interval: int = 20
    weight: float = 1.0


@dataclass
class Recipe:
    """A dataset recipe (see the module docstring)."""

    name: str
    groups: list[Group]
    material: str = "WSe2"
    calculator: str = "sw"
    profile: str | None = None
    seed: int = 0
    split: dict[str, float] = field(default_factory=lambda: {"train": 0.8, "valid": 0.1, "test": 0.1})
    vacuum: float = 20.0

    def __post_init__(self) -> None:
        if set(self.split) != set(SPLITS) or any(v < 0 for v in self.split.values()):
            raise ConfigError(f"recipe '{self.name}': split must have train, valid, test ≥ 0")
        for g in self.groups:
            if g.kind not in GENERATORS:
                raise ConfigError(
                    f"recipe '{self.name}': unknown group kind '{g.kind}'", f"use one of {sorted(GENERATORS)}"
                )
            if g.count < 1:
                raise ConfigError(f"recipe '{self.name}': group count must be ≥ 1")
            if not g.weight > 0:
                raise ConfigError(f"recipe '{self.name}': group weight {g.weight} must be > 0")


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe YAML (unknown keys are errors naming the key)."""
    return from_dict(Recipe, load_yaml(path), where=str(path))


def recipe_labeller(recipe: Recipe) -> Labeller:
    """The labeller of a recipe: its calculator with its profile (if any).

    Raises
    ------
    InputError
        If the calculator is unknown or the profile is missing or invalid.
    """
    return get_labeller(recipe.calculator, load_yaml(recipe.profile) if recipe.profile else {})


def _base_cell(recipe: Recipe, group: Group, i: int) -> Atoms:
    n, m = group.supercells[i % len(group.supercells)]
    return supercell(monolayer(recipe.material, vacuum=recipe.vacuum), n, m)


def _strain_value(group: Group, rng: np.random.Generator) -> float | tuple[float, float]:
    lo, hi = group.strain
    if group.uniaxial:
        return (float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi)))
    return float(rng.uniform(lo, hi))


def _static(recipe: Recipe, group: Group, rng: np.random.Generator) -> list[Atoms]:
    out = []
    for i in range(group.count):
        atoms = strain(_base_cell(recipe, group, i), _strain_value(group, rng))
        if group.defect:
            atoms = make_defect(atoms, group.defect)
        amp = float(rng.uniform(*group.rattle))
        out.append(rattle(atoms, amp, seed=int(rng.integers(2**31))) if amp > 0 else atoms)
    return out


def _md(recipe: Recipe, group: Group, rng: np.random.Generator) -> list[Atoms]:
    """Snapshots of Langevin MD (1 fs) with the SW teacher, one trajectory per supercell."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import thermalize_momenta

    from mlff2d.reference.sw import SWTeacher

    out: list[Atoms] = []
    per_traj = -(-group.count // len(group.supercells))
    for j in range(len(group.supercells)):
        atoms = strain(_base_cell(recipe, group, j), _strain_value(group, rng))
        if group.defect:
            atoms = make_defect(atoms, group.defect)
        info = dict(atoms.info)
        atoms.calc = SWTeacher()
        thermalize_momenta(atoms, group.temperature, rng=np.random.default_rng(int(rng.integers(2**31))))
        dyn = Langevin(
            atoms,
            1.0 * units.fs,
            temperature_K=group.temperature,
            friction=0.02,
            fixcm=False,
            rng=np.random.default_rng(int(rng.integers(2**31))),
        )
        dyn.run(5 * group.interval)  # equilibrate
        for _ in range(min(per_traj, group.count - len(out))):
            dyn.run(group.interval)
            snap = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True)
            snap.info = {**info, "config_type": "md", "md_temperature": group.temperature}
            out.append(snap)
    return out


#: group kind -> generator(recipe, group, rng) -> structures.
GENERATORS: dict[str, Callable[[Recipe, Group, np.random.Generator], list[Atoms]]] = {
    "static": _static,
    "md": _md,
}


def generate(recipe: Recipe) -> list[tuple[str, Atoms]]:
    """All structures of a recipe with their split (deterministic for a given seed)."""
    rng = np.random.default_rng(recipe.seed)
    frac = np.array([recipe.split[s] for s in SPLITS], dtype=float)
    frac /= frac.sum()
    out: list[tuple[str, Atoms]] = []
    for group in recipe.groups:
        structs = GENERATORS[group.kind](recipe, group, rng)
        if group.weight != 1.0:
            for atoms in structs:
                atoms.info["config_weight"] = group.weight
        n = len(structs)
        n_valid = int(round(frac[1] * n))
        n_test = int(round(frac[2] * n))
        order = rng.permutation(n)
        split_of = np.array(["train"] * n, dtype=object)
        split_of[order[:n_test]] = "test"
        split_of[order[n_test : n_test + n_valid]] = "valid"
        out += [(str(split_of[i]), structs[i]) for i in range(n)]
    return out


def generate_cached(recipe: Recipe, path: Path) -> list[tuple[str, Atoms]]:
    """:func:`generate`, saved to ``path`` (extxyz) and read back on later runs of the same recipe.

    Resuming a long (DFT) labelling run then computes exactly the same structures, even where
    regenerating them (SW MD snapshots) could differ in the last digits on another machine.
    """
    from ase.io import read

    rdict = to_dict(recipe)
    for g in rdict["groups"]:  # recipes without weights keep their hash (and their cached structures)
        if g.get("weight") == 1.0:
            del g["weight"]
    rhash = hashlib.sha256(json.dumps(rdict, sort_keys=True, default=str).encode()).hexdigest()[:16]
    if path.is_file():
        frames = read(path, index=":", format="extxyz")
        if frames and all(a.info.get("recipe_hash") == rhash for a in frames):
            logger.info("read %d generated structures from %s", len(frames), path)
            return [(str(a.info.pop("split")), _drop_cache_keys(a)) for a in frames]
    items = generate(recipe)
    cached = []
    for split, atoms in items:
        a = atoms.copy()
        a.info.update(split=split, recipe_hash=rhash)
        cached.append(a)
    with atomic_path(path) as tmp:
        write(tmp, cached, format="extxyz")
    # label the structures as read back, so a re-run gives the same keys to the last digit
    return [(str(a.info.pop("split")), _drop_cache_keys(a)) for a in read(path, index=":", format="extxyz")]


def _drop_cache_keys(atoms: Atoms) -> Atoms:
    atoms.info.pop("recipe_hash", None)
    return atoms


def label_timings(frames: list[Atoms]) -> dict[str, Any]:
    """Label times (``info["wall_s"]``, ``info["cpu_s"]``, s): total, per cell size and k grid."""
    groups: dict[str, list[tuple[float, float]]] = {}
    for a in frames:
        if "wall_s" in a.info:
            key = f"{len(a)} atoms" + (f", k {a.info['kpts']}" if "kpts" in a.info else "")
            groups.setdefault(key, []).append((float(a.info["wall_s"]), float(a.info.get("cpu_s", np.nan))))
    per = {}
    for k, v in sorted(groups.items()):
        wall, cpu = np.array(v).T
        per[k] = {
            "n": len(v),
            "mean_wall_s": round(float(wall.mean()), 1),
            "max_wall_s": round(float(wall.max()), 1),
        }
        if np.isfinite(cpu).any():
            per[k]["mean_cpu_s"] = round(float(np.nanmean(cpu)), 1)
    total = sum(w for v in groups.values() for w, _ in v)
    return {"total_wall_s": round(float(total), 1), "per_size": per}


def count_config_types(frames: Sequence[Atoms]) -> dict[str, int]:
    """Frames per ``config_type`` (``?`` for frames without one), sorted by name."""
    out: dict[str, int] = {}
    for f in frames:
        key = str(f.info.get("config_type", "?"))
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


def build_dataset(
    recipe_path: str | Path,
    outdir: str | Path,
    store: str | Path | None = None,
    progress: bool = True,
    label: bool = True,
    record: RunRecord | None = None,
) -> dict[str, Any]:
    """Generate, label (resumably) and split a recipe into ``outdir/{train,valid,test}.extxyz``.

    Parameters
    ----------
    recipe_path
        The recipe YAML.
    outdir
        Output folder; also holds the label store (``labels/``) unless ``store`` is given.
    store
        Label store folder, e.g. a shared DFT store.
    label
        Compute missing labels; False writes the splits from what the store already holds.
    record
        Receives the timings (s) of generation and labelling (``summary.yaml`` is written by
        :class:`mlff2d.labeling.workflow.DatasetWorkflow`).

    Returns
    -------
    dict
        Counts per split and config_type, failures, label settings, hashes of the split files;
        ``"files"``: the written files by name (``train``, ``valid``, ``test``, ``provenance``,
        ``structures``).
    """
    recipe = load_recipe(recipe_path)
    outdir = Path(outdir)
    rec = record if record is not None else RunRecord("dataset")
    with rec.timer("generate"):
        items = generate_cached(recipe, outdir / "structures.extxyz")
    labeller = recipe_labeller(recipe)
    lstore = LabelStore(Path(store) if store else outdir / "labels")
    with rec.timer("label"):
        report = label_structures([a for _, a in items], labeller, lstore, progress=progress, compute=label)
    frames: dict[str, list[Atoms]] = {s: [] for s in SPLITS}
    for (split, atoms), key in zip(items, report.keys, strict=True):
        if lstore.status(key) == "done":
            frame = lstore.read(key)
            if "config_weight" in atoms.info:  # a recipe setting, not a label: not in the store
                frame.info["config_weight"] = atoms.info["config_weight"]
            frames[split].append(frame)
    counts: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        with atomic_path(outdir / f"{split}.extxyz") as tmp:
            write(tmp, frames[split], format="extxyz")
        counts[split] = count_config_types(frames[split])
    results = {
        "n_structures": len(items),
        "n_labelled": sum(len(v) for v in frames.values()),
        "n_failed": report.failed,
        "n_pending": report.pending,
        "computed_now": report.computed,
        "counts": counts,
        "n_atoms": {s: int(sum(len(a) for a in frames[s])) for s in SPLITS},
        "calculator": recipe.calculator,
        "source": labeller.source,
        "settings": labeller.settings,
        "settings_hash": labeller.settings_hash,
        "hashes": {s: file_hash(outdir / f"{s}.extxyz") for s in SPLITS},
    }
    provenance = {
        "recipe": to_dict(recipe),
        "versions": package_versions(),
        **results,
        "timings": label_timings([a for fr in frames.values() for a in fr]),
        "failures": lstore.failures(),
    }
    atomic_write_text(outdir / "provenance.yaml", yaml.safe_dump(provenance, sort_keys=False))
    files = {s: outdir / f"{s}.extxyz" for s in SPLITS}
    files.update(provenance=outdir / "provenance.yaml", structures=outdir / "structures.extxyz")
    return {**results, "files": files}
