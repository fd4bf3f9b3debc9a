"""The iterations of ``mlff2d learn`` (see :mod:`mlff2d.learning.workflow` for the recipe).

Folder of a run::

    data/                  the starting dataset (`mlff2d dataset` of the recipe's dataset recipe)
    holdout/               oracle-labelled MD frames of the target cell (unless the recipe names a file)
    labels/                the oracle's label store (one file per label; resumable)
    iter_000/
      train.extxyz         this iteration's training split (the start's + every frame added so far)
      committee/           `mlff2d train --committee K` on it
      holdout/             `mlff2d evaluate committee/ holdout` (committee mean; σ_F calibration)
      explore.json         σ_F of the target MD (per frame) and of the previous iteration's
                           chosen frames; candidate MD summary; keyed by the committee
      candidates.extxyz    every candidate MD frame with its σ_F (arrays sigma_f, info sigma_max)
      selected.extxyz      the frames chosen for labelling
      labelled.extxyz      their oracle labels (added to the next iteration's train.extxyz)
      iteration.json       the record of the iteration
    learning.json          every iteration's record
    learning_curve.png     holdout force error and target max σ_F against the iteration

A record holds: training set size and config types, holdout errors (meV/atom, meV/Å), the
target MD's largest σ_F (eV/Å), candidate frames above the threshold, the frames chosen
(count, config types, σ_F before = under this committee, after = under the next), labels computed
and timings (s).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from mlff2d.config import load_yaml, to_dict
from mlff2d.errors import InputError
from mlff2d.labeling.dataset import count_config_types
from mlff2d.learning.explore import (
    PRISTINE,
    build_cell,
    committee_md,
    committee_md_lammps,
    select_frames,
    sigma_of,
)
from mlff2d.learning.workflow import LearnRecipe, LearnResult
from mlff2d.runinfo import RunRecord, atomic_path, atomic_write_text, file_hash
from mlff2d.workflow import path_hash

logger = logging.getLogger(__name__)

HISTORY = "learning.json"
CURVE = "learning_curve.png"


def check_recipe(recipe: LearnRecipe, where: str) -> None:
    """Refuse a recipe whose files are missing or whose cells the oracle cannot take.

    Raises
    ------
    InputError
        Naming ``where``, the key and the value.
    """
    from mlff2d.reference.registry import get_labeller

    for key, path in (("dataset", recipe.dataset), ("train_config", recipe.train_config)):
        if not path.exists():
            raise InputError(f"{where}: {key}: {path} does not exist", "give an existing file or folder")
    for key, path in (("profile", recipe.profile), ("holdout.file", recipe.holdout.file)):
        if path is not None and not path.is_file():
            raise InputError(f"{where}: {key}: {path} is not a file", "give an existing file")
    if recipe.dataset.is_dir():
        from mlff2d.training.data import DatasetFiles

        DatasetFiles.from_folder(recipe.dataset)
    labeller = get_labeller(recipe.calculator, load_yaml(recipe.profile) if recipe.profile else {})
    c = recipe.candidates
    for defect in c.defects:
        cell = _cell(recipe, defect, c.supercell, 0.0, f"{where}: candidates.defects")
        labeller.check_structure(cell, f"{where}: candidate cell {defect}")
    t = recipe.target
    target = _cell(recipe, t.defect, t.supercell, t.strain, f"{where}: target.defect")
    if recipe.holdout.file is None and recipe.calculator != "sw":
        logger.warning(
            "%s: the holdout is %d frames of the %d-atom target cell labelled by %s (give holdout.file"
            " to use labelled frames instead)",
            where,
            recipe.holdout.frames,
            len(target),
            recipe.calculator,
        )


def _cell(recipe: LearnRecipe, defect: str, size: tuple[int, int], eps: float, where: str) -> Atoms:
    from mlff2d.errors import StructureError

    try:
        return build_cell(recipe.material, defect, size, eps, recipe.vacuum)
    except StructureError as exc:
        raise InputError(f"{where}: {exc.message}", exc.hint or f"or {PRISTINE}") from None


# -- the loop -------------------------------------------------------------------------------------


def run_loop(
    recipe: LearnRecipe, outdir: Path, store: Path, record: RunRecord, progress: bool = True
) -> LearnResult:
    """Run (or resume) every iteration of ``recipe`` in ``outdir``; labels go to ``store``."""
    from mlff2d.labeling.dataset import recipe_labeller
    from mlff2d.labeling.store import LabelStore

    with record.timer("start"):
        data = _start_dataset(recipe, outdir, progress)
        holdout = _holdout(recipe, outdir, progress)
    oracle = recipe_labeller(recipe)  # type: ignore[arg-type]
    lstore = LabelStore(store)
    history: list[dict[str, Any]] = []
    train = data.train
    for i in range(recipe.max_iterations + 1):
        it = Iteration(recipe, outdir / f"iter_{i:03d}", i, progress)
        rec = it.run(train, data.valid, data.test, holdout, oracle, lstore, history[-1] if history else None)
        after = rec.pop("previous_sigma_after")
        if history:
            history[-1]["selected"]["sigma_after"] = after
        history.append(rec)
        if rec["stop"]:
            break
        train = it.folder / "train_next.extxyz"
    atomic_write_text(outdir / HISTORY, json.dumps(history, indent=1) + "\n")
    plot_learning_curve(history, recipe.threshold, outdir / CURVE)
    last = outdir / f"iter_{len(history) - 1:03d}"
    added: dict[str, int] = {}
    for rec in history:
        for k, v in rec["labelled"]["config_types"].items():
            added[k] = added.get(k, 0) + v
    return LearnResult(
        outdir=outdir,
        dataset=last / "train.extxyz",
        model=last / "committee",
        history=outdir / HISTORY,
        curve=outdir / CURVE,
        iterations=len(history),
        converged=history[-1]["stop"] == "converged",
        stop=history[-1]["stop"],
        added=added,
        holdout_forces_rmse=[r["holdout"]["forces_rmse"] for r in history],
        holdout_energy_rmse=[r["holdout"]["energy_rmse"] for r in history],
        target_sigma_max=[r["target"]["sigma_max"] for r in history],
    )


def _start_dataset(recipe: LearnRecipe, outdir: Path, progress: bool) -> Any:
    """The starting splits (``train``, ``valid``, ``test``).

    Those of a dataset folder, or of the dataset recipe, built in ``data/`` by ``mlff2d dataset``.
    """
    from mlff2d.labeling.workflow import DatasetSettings, DatasetWorkflow
    from mlff2d.training.data import DatasetFiles

    if recipe.dataset.is_dir():
        return DatasetFiles.from_folder(recipe.dataset)
    return DatasetWorkflow(DatasetSettings(recipe.dataset), outdir / "data", progress=progress).run()


def _holdout(recipe: LearnRecipe, outdir: Path, progress: bool) -> Path:
    """The holdout file: the recipe's, or oracle-labelled SW-MD frames of the target cell."""
    import yaml

    from mlff2d.labeling.workflow import DatasetSettings, DatasetWorkflow

    h, t = recipe.holdout, recipe.target
    if h.file is not None:
        return h.file
    group: dict[str, Any] = {
        "count": h.frames,
        "kind": "md",
        "supercells": [list(t.supercell)],
        "strain": [t.strain, t.strain],
        "temperature": t.temperature,
        "interval": h.interval,
    }
    if t.defect != PRISTINE:
        group["defect"] = t.defect
    spec = {
        "name": f"{recipe.name}_holdout",
        "material": recipe.material,
        "calculator": recipe.calculator,
        "profile": str(recipe.profile) if recipe.profile else None,
        "seed": recipe.seed + 99,
        "vacuum": recipe.vacuum,
        "split": {"train": 0.0, "valid": 0.0, "test": 1.0},
        "groups": [group],
    }
    path = outdir / "holdout_recipe.yaml"
    text = yaml.safe_dump(spec, sort_keys=False)
    if not (path.is_file() and path.read_text() == text):
        atomic_write_text(path, text)
    return DatasetWorkflow(DatasetSettings(path), outdir / "holdout", progress=progress).run().test


class Iteration:
    """One iteration of the loop in its folder (every step reused when finished).

    Parameters
    ----------
    recipe
        The learning recipe.
    folder
        ``iter_<iii>/``.
    index
        The iteration number (0: the starting dataset).
    progress
        Show progress bars.
    """

    def __init__(self, recipe: LearnRecipe, folder: Path, index: int, progress: bool = True) -> None:
        self.recipe, self.folder, self.index, self.progress = recipe, folder, index, progress
        self.timings: dict[str, float] = {}

    def run(
        self,
        train: Path,
        valid: Path,
        test: Path,
        holdout: Path,
        oracle: Any,
        store: Any,
        previous: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Train, measure, explore, select and label; return the iteration's record."""
        from ase.io import read

        from mlff2d.training.committee import CommitteeCalculator

        r = self.recipe
        self.folder.mkdir(parents=True, exist_ok=True)
        train_frames = read(train, index=":", format="extxyz")
        _write_frames(self.folder / "train.extxyz", train_frames)
        committee = self._committee(valid, test)
        metrics = self._holdout(holdout)
        calc = CommitteeCalculator(committee.models)
        explore = self._explore(calc, previous)
        target_max = float(max(explore["target"]))
        rec: dict[str, Any] = {
            "iteration": self.index,
            "train": {"n": len(train_frames), "config_types": count_config_types(train_frames)},
            "committee": {"folder": f"{self.folder.name}/committee", "test": _compact(committee.test)},
            "holdout": metrics,
            "target": {"sigma_max": target_max, "sigma_per_frame": explore["target"]},
            "previous_sigma_after": explore["previous"],
            "candidates": None,
            "selected": {"count": 0, "config_types": {}, "sigma_before": [], "sigma_after": None},
            "labelled": {"count": 0, "config_types": {}, "computed": 0, "failed": 0},
            "stop": None,
        }
        if target_max < r.threshold:
            rec["stop"] = "converged"
        elif self.index >= r.max_iterations:
            rec["stop"] = "max_iterations"
        else:
            rec["candidates"] = self._explore_candidates(calc, explore)
            self._select_and_label(rec, train_frames, oracle, store)
            if rec["labelled"]["count"] == 0:  # the next committee would be this one again
                rec["stop"] = "nothing_added"
        rec["timings_s"] = dict(self.timings)
        atomic_write_text(self.folder / "iteration.json", json.dumps(rec, indent=1) + "\n")
        logger.info(
            "iteration %d: holdout F RMSE %.1f meV/Å, target max σ_F %.3f eV/Å, %d frames labelled%s",
            self.index,
            metrics["forces_rmse"],
            target_max,
            rec["labelled"]["count"],
            f" (stop: {rec['stop']})" if rec["stop"] else "",
        )
        return rec

    def _committee(self, valid: Path, test: Path) -> Any:
        from mlff2d.training.committee import CommitteeWorkflow
        from mlff2d.training.workflows import TrainSettings

        s = TrainSettings(
            self.recipe.train_config,
            train_file=self.folder / "train.extxyz",
            valid_file=valid,
            test_file=test,
            committee=self.recipe.committee,
        )
        wf = CommitteeWorkflow(s, self.folder / "committee", progress=self.progress)
        res = wf.run()
        self.timings["train"] = wf.wall_s
        return res

    def _holdout(self, holdout: Path) -> dict[str, Any]:
        from mlff2d.training.workflows import EvaluateSettings, EvaluateWorkflow

        s = EvaluateSettings(self.folder / "committee", holdout, target_force_error=self.recipe.threshold)
        wf = EvaluateWorkflow(s, self.folder / "holdout", progress=self.progress)
        res = wf.run()
        self.timings["holdout"] = wf.wall_s
        overall = res.metrics["overall"]
        return {
            "energy_rmse": res.energy_rmse,
            "forces_rmse": res.forces_rmse,
            "forces_mae": overall["forces"]["mae"],
            "n_frames": overall["n_configs"],
            "spearman": (res.uncertainty or {}).get("spearman"),
        }

    def _key(self) -> str:
        """Identity of the exploration: the committee's fingerprint and the MD settings."""
        r = self.recipe
        md = {
            "committee": path_hash(self.folder / "committee"),
            "cells": [to_dict(r.candidates), to_dict(r.target)],
            "md": [r.material, r.vacuum, r.timestep, r.friction, r.sigma_stop, r.seed, self.index],
        }
        return hashlib.sha256(json.dumps(md, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def _explore(self, calc: Any, previous: dict[str, Any] | None) -> dict[str, Any]:
        """σ_F of the target MD and of the previous iteration's chosen frames (cached by key)."""
        from ase.io import read

        path, key = self.folder / "explore.json", self._key()
        cached = json.loads(path.read_text()) if path.is_file() else {}
        if cached.get("key") == key:
            self.timings.update(cached["timings_s"])
            return cached
        t0 = time.perf_counter()
        target = self._target_md(calc)
        t1 = time.perf_counter()
        prev = None
        if previous is not None and previous["selected"]["count"]:
            chosen = read(self.folder.parent / f"iter_{self.index - 1:03d}" / "selected.extxyz", index=":")
            prev = sigma_of(chosen, calc)
        timings = {"target_md": round(t1 - t0, 2), "previous_sigma": round(time.perf_counter() - t1, 2)}
        data = {"key": key, "target": target, "previous": prev, "candidates": None, "timings_s": timings}
        atomic_write_text(path, json.dumps(data, indent=1) + "\n")
        self.timings.update(timings)
        return data

    def _explore_candidates(self, calc: Any, data: dict[str, Any]) -> dict[str, Any]:
        """MD of the candidate cells into ``candidates.extxyz``; its summary joins ``explore.json``."""
        if data["candidates"] is not None and (self.folder / "candidates.extxyz").is_file():
            return data["candidates"]
        t0 = time.perf_counter()
        candidates = self._candidate_md(calc)
        sigma = [float(f.info["sigma_max"]) for f in candidates]
        data["candidates"] = {
            "frames": len(candidates),
            "above_threshold": sum(v > self.recipe.threshold for v in sigma),
            "sigma_max": max(sigma, default=0.0),
            "config_types": count_config_types(candidates),
        }
        data["timings_s"]["candidate_md"] = round(time.perf_counter() - t0, 2)
        _write_frames(self.folder / "candidates.extxyz", candidates)
        atomic_write_text(self.folder / "explore.json", json.dumps(data, indent=1) + "\n")
        self.timings.update(data["timings_s"])
        return data["candidates"]

    def _target_md(self, calc: Any) -> list[float]:
        """Largest σ_F (eV/Å) every ``interval`` steps of the target MD (ASE, or LAMMPS + plugin)."""
        r, t = self.recipe, self.recipe.target
        cell = build_cell(r.material, t.defect, t.supercell, t.strain, r.vacuum)
        if t.engine == "ase":
            frames = committee_md(
                cell, calc, t.temperature, t.steps, t.interval, **self._md_kw(0), sigma_stop=r.sigma_stop
            )
            return [float(f.info["sigma_max"]) for f in frames]
        from mlff2d.training.committee import CommitteeExportWorkflow
        from mlff2d.training.workflows import ExportSettings

        settings = ExportSettings(self.folder / "committee", symmetrix=False)
        export = CommitteeExportWorkflow(settings, self.folder / "export").run()
        steps, sigma = committee_md_lammps(
            cell,
            export.lammps_models,
            export.elements,
            self.folder / "target_lammps",
            t.temperature,
            t.steps,
            t.interval,
            **self._md_kw(0),
        )
        return [s for step, s in zip(steps, sigma, strict=True) if step > 0]

    def _md_kw(self, cell_index: int) -> dict[str, Any]:
        r = self.recipe
        seed = r.seed + 1000 * self.index + cell_index
        return {"timestep": r.timestep, "friction": r.friction, "seed": seed}

    def _candidate_md(self, calc: Any) -> list[Atoms]:
        """MD of every candidate cell (defects × temperatures × strains), frames with σ_F."""
        from rich.progress import Progress

        r, c = self.recipe, self.recipe.candidates
        cells = [(d, temp, e) for d in c.defects for temp in c.temperatures for e in c.strains]
        out: list[Atoms] = []
        with Progress(disable=not self.progress, transient=True) as bar:
            task = bar.add_task(f"candidate MD (iteration {self.index})", total=len(cells))
            for k, (defect, temp, eps) in enumerate(cells, start=1):
                cell = build_cell(r.material, defect, c.supercell, eps, r.vacuum)
                out += committee_md(
                    cell, calc, temp, c.steps, c.interval, **self._md_kw(k), sigma_stop=r.sigma_stop
                )
                bar.advance(task)
        return out

    def _select_and_label(self, rec: dict[str, Any], train: list[Atoms], oracle: Any, store: Any) -> None:
        """Choose frames above the threshold, label them with the oracle, write the next train split.

        ``labelled.json`` records the labelling of exactly these chosen frames (counts, time), so a
        rerun reports what the first run did, while the labels come from the store.
        """
        from ase.io import read

        r = self.recipe
        candidates = read(self.folder / "candidates.extxyz", index=":", format="extxyz")
        chosen = select_frames(candidates, r.threshold, r.frames_per_iteration)
        _write_frames(self.folder / "selected.extxyz", chosen)
        rec["selected"].update(
            count=len(chosen),
            config_types=count_config_types(chosen),
            sigma_before=[round(float(f.info["sigma_max"]), 4) for f in chosen],
        )
        path, key = self.folder / "labelled.json", file_hash(self.folder / "selected.extxyz")
        done = json.loads(path.read_text()) if path.is_file() else {}
        if done.get("selected") != key or not (self.folder / "labelled.extxyz").is_file():
            done = self._label([_plain(f) for f in chosen], oracle, store)
            atomic_write_text(path, json.dumps({"selected": key, **done}, indent=1) + "\n")
        labelled = read(self.folder / "labelled.extxyz", index=":", format="extxyz")
        _write_frames(self.folder / "train_next.extxyz", [*train, *labelled])
        self.timings["label"] = done["wall_s"]
        rec["labelled"].update(count=len(labelled), config_types=count_config_types(labelled))
        rec["labelled"].update(computed=done["computed"], failed=done["failed"])

    def _label(self, frames: list[Atoms], oracle: Any, store: Any) -> dict[str, Any]:
        """Label ``frames`` through the store; write ``labelled.extxyz``; counts and wall time (s)."""
        from mlff2d.labeling.label import label_structures

        t0 = time.perf_counter()
        report = label_structures(frames, oracle, store, progress=self.progress)
        labelled = [store.read(k) for k in report.keys if store.status(k) == "done"]
        _write_frames(self.folder / "labelled.extxyz", labelled)
        wall = round(time.perf_counter() - t0, 2)
        return {"computed": report.computed, "failed": report.failed, "wall_s": wall}


def _compact(overall: dict[str, Any] | None) -> dict[str, float] | None:
    """Energy (meV/atom) and force (meV/Å) RMSE of an overall error table."""
    if not overall:
        return None
    return {"energy_rmse": overall["energy"]["rmse"], "forces_rmse": overall["forces"]["rmse"]}


def _plain(frame: Atoms) -> Atoms:
    """A chosen frame without its σ_F arrays and MD bookkeeping (what the oracle labels)."""
    out = Atoms(frame.numbers, positions=frame.positions, cell=frame.cell, pbc=frame.pbc)
    out.info = {k: v for k, v in frame.info.items() if k not in ("sigma_max", "sigma_mean", "md_step")}
    return out


def _write_frames(path: Path, frames: list[Atoms]) -> None:
    """Write extxyz atomically, leaving the file untouched when it already holds these frames."""
    from ase.io import write

    buf = io.StringIO()
    write(buf, frames, format="extxyz")
    if path.is_file() and path.read_text() == buf.getvalue():
        return
    atomic_write_text(path, buf.getvalue())


def plot_learning_curve(history: list[dict[str, Any]], threshold: float, path: Path) -> Path:
    """Holdout force RMSE (meV/Å) and target max σ_F (eV/Å) against the iteration (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    it = np.array([h["iteration"] for h in history])
    fig, ax = plt.subplots(figsize=(5.5, 3.6), constrained_layout=True)
    ax.plot(it, [h["holdout"]["forces_rmse"] for h in history], "o-", color="C0", label="holdout F RMSE")
    ax.set_xlabel("iteration")
    ax.set_ylabel("holdout force RMSE (meV/Å)", color="C0")
    ax.set_ylim(bottom=0)
    ax.set_xticks(it)
    ax2 = ax.twinx()
    ax2.plot(it, [h["target"]["sigma_max"] for h in history], "s--", color="C3", label="target max σ_F")
    ax2.axhline(threshold, color="C3", lw=0.8, ls=":", label=f"threshold {threshold:g} eV/Å")
    ax2.legend(loc="upper right", fontsize=8)
    ax2.set_ylabel("target MD max σ_F (eV/Å)", color="C3")
    ax2.set_ylim(bottom=0)
    added = [h["labelled"]["count"] for h in history]
    ax.set_title(f"active learning: {sum(added)} frames added in {len(history)} iterations", fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, format="png")
    plt.close(fig)
    return path
