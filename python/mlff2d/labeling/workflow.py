"""The dataset stage as a workflow: ``mlff2d dataset RECIPE -o FOLDER``.

:class:`DatasetWorkflow` wraps :func:`mlff2d.labeling.dataset.build_dataset`: generate the
structures of a recipe, label them with its reference calculator through a resumable label store
(one file per finished calculation, so an interrupted run loses nothing), split them by group
into ``train/valid/test.extxyz`` and write ``provenance.yaml``. This module imports no heavy
library (the command builds its options from it).

Example
-------
>>> from mlff2d.labeling.workflow import DatasetSettings, DatasetWorkflow  # doctest: +SKIP
>>> res = DatasetWorkflow(DatasetSettings("training/datasets/wse2_sw_quick.yaml"), "runs/data").run()
>>> res.train, res.counts["test"]  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mlff2d.errors import InputError
from mlff2d.runinfo import RunRecord
from mlff2d.settings import Settings, setting
from mlff2d.workflow import StageResult, Workflow


@dataclass
class DatasetSettings(Settings):
    """Settings of ``mlff2d dataset``.

    Attributes
    ----------
    recipe
        Dataset recipe YAML (``training/datasets/*.yaml``, see :mod:`mlff2d.labeling.dataset`).
    store
        Label store folder (default ``<output>/labels``); share one across recipes to reuse labels.
    no_label
        Compute nothing: write the splits from the labels the store already holds.
    """

    recipe: Path = setting(help="Dataset recipe YAML.", argument=True)
    store: Path | None = setting(
        None, "Label store (default OUTPUT/labels); share one across recipes to reuse labels."
    )
    no_label: bool = setting(False, "Compute nothing: write the splits from the labels already in the store.")


@dataclass
class DatasetResult(StageResult):
    """A labelled dataset split into train / valid / test.

    Attributes
    ----------
    train, valid, test
        The splits (extxyz with ``REF_energy`` in eV, ``REF_forces`` in eV/Å, ``REF_stress`` in eV/Å³).
    provenance
        ``provenance.yaml``: recipe, versions, counts, label timings, failures.
    structures
        Every generated structure with its split (read back when the run is resumed).
    n_structures, n_labelled, n_failed, n_pending
        Structures of the recipe; labelled; failed (excluded); not labelled yet (``no_label``).
    computed_now
        Labels computed by this run (the others came from the store).
    counts
        Structures per split and ``config_type``.
    n_atoms
        Atoms per split.
    calculator, source
        The reference calculator and the label source it writes (``sw-teacher``, ``gpaw-pbe``...).
    label_settings, settings_hash
        The calculator settings and their hash (the key of the labels in the store).
    hashes
        Content hash of each split file.
    """

    train: Path
    valid: Path
    test: Path
    provenance: Path | None = None
    structures: Path | None = None
    n_structures: int = 0
    n_labelled: int = 0
    n_failed: int = 0
    n_pending: int = 0
    computed_now: int = 0
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    n_atoms: dict[str, int] = field(default_factory=dict)
    calculator: str = ""
    source: str = ""
    label_settings: dict[str, Any] = field(default_factory=dict)
    settings_hash: str = ""
    hashes: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: structures per split, failed and not yet labelled ones."""
        sizes = ", ".join(f"{s} {sum(self.counts.get(s, {}).values())}" for s in ("train", "valid", "test"))
        return f"{sizes} structures ({self.n_failed} failed, {self.n_pending} not labelled yet)"


class DatasetWorkflow(Workflow[DatasetSettings, DatasetResult]):
    """Generate, label (resumably) and split a dataset recipe.

    A finished folder is reused when the recipe file, the calculator profile it names and the
    settings are unchanged. Otherwise the labels already in the store are reused one by one, so
    an interrupted run, or one with a grown recipe, only computes the missing ones.
    """

    command = "dataset"
    Settings = DatasetSettings
    Result = DatasetResult

    def inputs(self) -> dict[str, Path]:
        """The recipe and the calculator profile it names (the label store is a cache, not an input)."""
        from mlff2d.labeling.dataset import load_recipe

        out = {"recipe": self.settings.recipe}
        profile = load_recipe(self.settings.recipe).profile
        if profile:
            out["profile"] = Path(profile)
        return out

    def check(self) -> None:
        """Check the recipe, its calculator and its cells before anything is written.

        Unknown keys and bad values are errors naming the key; the calculator must exist with its
        profile; the recipe's base cell and defects must build and pass the calculator's rules
        (:meth:`mlff2d.reference.registry.Labeller.check_structure`); the store must be a folder.

        Raises
        ------
        InputError
            Naming the recipe key, the calculator, the cell or the store.
        """
        from mlff2d.labeling.dataset import load_recipe, recipe_labeller
        from mlff2d.structures import make_defect, monolayer, supercell

        recipe = load_recipe(self.settings.recipe)
        labeller = recipe_labeller(recipe)
        cell = supercell(monolayer(recipe.material, vacuum=recipe.vacuum), 3, 3)
        for group in recipe.groups:
            built = make_defect(cell, group.defect) if group.defect else cell
            labeller.check_structure(built, f"{self.settings.recipe}: {built.info.get('config_type')} cell")
        store = self.settings.store
        if store is not None and store.exists() and not store.is_dir():
            raise InputError(f"--store: {store} is a file, not a label store folder", "give a folder")

    def _run(self, record: RunRecord) -> DatasetResult:
        from mlff2d.labeling.dataset import build_dataset

        s, out = self.settings, self.outdir
        label = not s.no_label
        res = build_dataset(s.recipe, out, s.store, progress=self.progress, label=label, record=record)
        small = [f.name for f in fields(DatasetResult) if f.name in res]
        return DatasetResult(
            outdir=out, **res["files"], label_settings=res["settings"], **{k: res[k] for k in small}
        )
