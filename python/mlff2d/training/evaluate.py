"""Error metrics of a MACE model on a labelled dataset: batched, per config_type, with plots.

Structures go through mace-torch's own data pipeline (``AtomicData`` graphs collated by its
``torch_geometric`` data loader) in batches. Errors: energy per atom (meV/atom), forces
(meV/Å, all components and x/y/z separately), stress (meV/Å³, when the data have
``REF_stress``), each as MAE and RMSE, per ``config_type`` and overall. Written as
``metrics.json``, ``metrics.md`` (a Markdown table), ``parity_energy.png``,
``parity_forces.png`` and ``predictions.extxyz``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from numpy.typing import NDArray

from mlff2d.runinfo import RunRecord, atomic_write_text
from mlff2d.training.committee import committee_models, load_members
from mlff2d.training.data import check_elements, import_mace, model_heads, read_dataset, resolve_head
from mlff2d.training.uncertainty import calibrate_predictions, forces_std
from mlff2d.training.workflows import EvaluateResult, EvaluateSettings
from mlff2d.units import EV_TO_MEV

logger = logging.getLogger(__name__)

COMPONENTS = ("x", "y", "z")


@dataclass
class Predictions:
    """Reference and predicted labels of a dataset, in the order of the file.

    Attributes
    ----------
    n_atoms
        Atoms per structure, shape (S,).
    config_types
        ``config_type`` of each structure, length S.
    energy_ref, energy_pred
        Total energies (eV), shape (S,).
    forces_ref, forces_pred
        Forces of all atoms stacked (eV/Å), shape (sum(n_atoms), 3).
    stress_ref, stress_pred
        Voigt stresses (eV/Å³, ASE order), shape (S, 6); ``None`` if the data have none.
    energy_members, forces_members
        A committee's member energies (eV), shape (K, S), and forces (eV/Å), shape
        (K, sum(n_atoms), 3); the ``*_pred`` fields are then their mean. ``None`` for one model.
    """

    n_atoms: NDArray[np.int64]
    config_types: list[str]
    energy_ref: NDArray[np.float64]
    energy_pred: NDArray[np.float64]
    forces_ref: NDArray[np.float64]
    forces_pred: NDArray[np.float64]
    stress_ref: NDArray[np.float64] | None = None
    stress_pred: NDArray[np.float64] | None = None
    energy_members: NDArray[np.float64] | None = None
    forces_members: NDArray[np.float64] | None = None

    def __str__(self) -> str:
        return (
            f"Predictions({len(self.n_atoms)} structures, {int(self.n_atoms.sum())} atoms, "
            f"stress={'yes' if self.stress_ref is not None else 'no'})"
        )

    def atom_mask(self, structure_mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Per-atom mask, shape (sum(n_atoms),), from a per-structure mask, shape (S,)."""
        return np.repeat(structure_mask, self.n_atoms)


def one_line(m: dict[str, Any]) -> str:
    """``"E RMSE 1.2 meV/atom, F RMSE 23.4 meV/Å"`` (+ stress) for one metrics entry."""
    s = f"E RMSE {m['energy']['rmse']:.2f} meV/atom, F RMSE {m['forces']['rmse']:.1f} meV/Å"
    if "stress" in m:
        s += f", S RMSE {m['stress']['rmse']:.3f} meV/Å³"
    return s


@contextmanager
def default_dtype(dtype) -> Iterator[None]:
    """Temporarily set torch's default dtype (mace-torch builds graphs in it)."""
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def predict(
    model,
    frames: list[Atoms],
    batch_size: int = 16,
    device: str = "cpu",
    head: str | None = None,
    energy_key: str = "REF_energy",
    forces_key: str = "REF_forces",
    stress_key: str = "REF_stress",
    progress: bool = True,
) -> Predictions:
    """Evaluate ``model`` on labelled ``frames`` in batches of ``batch_size`` structures.

    ``model`` may be a committee (a list of models with the same elements and cut-off): every
    member runs on the same batched graphs.

    Returns
    -------
    Predictions
        Reference and predicted energies (eV), forces (eV/Å), stresses (eV/Å³); for a
        committee the member mean, with the member energies and forces.
    """
    from mlff2d.runtime import keep_allocator_memory

    import_mace()
    from mace import data as mdata
    from mace.tools import AtomicNumberTable, torch_geometric

    keep_allocator_memory()
    models = list(model) if isinstance(model, (list, tuple)) else [model]
    heads = model_heads(models[0])
    head = head or heads[0]
    has_stress = all(stress_key in a.info for a in frames)
    keyspec = mdata.KeySpecification(info_keys={"energy": energy_key}, arrays_keys={"forces": forces_key})
    dtype = next(models[0].parameters()).dtype
    z_table = AtomicNumberTable([int(z) for z in models[0].atomic_numbers])
    r_max = float(models[0].r_max)
    with default_dtype(dtype):
        configs = mdata.config_from_atoms_list(frames, key_specification=keyspec, head_name=head)
        graphs = [
            mdata.AtomicData.from_config(c, z_table=z_table, cutoff=r_max, heads=heads) for c in configs
        ]
        loader = torch_geometric.dataloader.DataLoader(
            graphs, batch_size=batch_size, shuffle=False, drop_last=False
        )
        energy, forces, stress = _run_models(
            models, _progress(loader, len(frames), progress), device, has_stress
        )
    committee = len(models) > 1
    return Predictions(
        n_atoms=np.array([len(a) for a in frames]),
        config_types=[str(a.info.get("config_type", "default")) for a in frames],
        energy_ref=np.array([float(a.info[energy_key]) for a in frames]),
        energy_pred=energy.mean(axis=0),
        forces_ref=np.concatenate([a.arrays[forces_key] for a in frames]),
        forces_pred=forces.mean(axis=0),
        stress_ref=np.array([np.asarray(a.info[stress_key], dtype=float).reshape(-1)[:6] for a in frames])
        if has_stress
        else None,
        stress_pred=stress.mean(axis=0) if stress is not None else None,
        energy_members=energy if committee else None,
        forces_members=forces if committee else None,
    )


def _run_models(
    models: list, batches, device: str, has_stress: bool
) -> tuple[NDArray, NDArray, NDArray | None]:
    """Every model on every batch: energies (K, S) eV, forces (K, N, 3) eV/Å, Voigt stresses (K, S, 6)."""
    energies: list[list] = [[] for _ in models]
    forces: list[list] = [[] for _ in models]
    stresses: list[list] = [[] for _ in models]
    for batch in batches:
        batch = batch.to(device)
        for k, mdl in enumerate(models):
            out = mdl(batch.to_dict(), training=False, compute_force=True, compute_stress=has_stress)
            energies[k].append(out["energy"].detach().cpu().numpy())
            forces[k].append(out["forces"].detach().cpu().numpy())
            if has_stress:
                s = out["stress"].detach().cpu().numpy()
                stresses[k].append(s[:, [0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]])
            del out
    stack = [np.stack([np.concatenate(m) for m in x]) for x in (energies, forces)]
    return stack[0], stack[1], np.stack([np.concatenate(m) for m in stresses]) if has_stress else None


def _progress(loader, total: int, show: bool):
    """Iterate ``loader`` with a rich progress bar counting structures."""
    if not show:
        yield from loader
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("evaluating", total=total)
        for batch in loader:
            yield batch
            bar.advance(task, int(batch.num_graphs))


def _stats(err: NDArray[np.float64]) -> dict[str, float]:
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2)))}


def group_metrics(p: Predictions, mask: NDArray[np.bool_]) -> dict[str, Any]:
    """Errors of the structures selected by ``mask`` (shape (S,)), in meV units."""
    amask = p.atom_mask(mask)
    de = (p.energy_pred - p.energy_ref)[mask] / p.n_atoms[mask] * EV_TO_MEV
    df = (p.forces_pred - p.forces_ref)[amask] * EV_TO_MEV
    out: dict[str, Any] = {
        "n_configs": int(mask.sum()),
        "n_atoms": int(p.n_atoms[mask].sum()),
        "energy": _stats(de),
        "forces": {
            **_stats(df),
            **{c: _stats(df[:, i]) for i, c in enumerate(COMPONENTS)},
            "rms_ref": float(np.sqrt(np.mean((p.forces_ref[amask] * EV_TO_MEV) ** 2))),
        },
    }
    if p.stress_ref is not None:
        out["stress"] = _stats((p.stress_pred - p.stress_ref)[mask] * EV_TO_MEV)
    return out


def compute_metrics(p: Predictions) -> dict[str, Any]:
    """Overall and per-``config_type`` errors (see :func:`group_metrics`)."""
    types = np.array(p.config_types)
    return {
        "units": {"energy": "meV/atom", "forces": "meV/Å", "stress": "meV/Å³"},
        "overall": group_metrics(p, np.ones(len(types), bool)),
        "by_config_type": {t: group_metrics(p, types == t) for t in sorted(set(p.config_types))},
    }


def markdown_table(metrics: dict[str, Any]) -> str:
    """Format the metrics as a Markdown table (one row per config_type, then overall)."""
    has_s = "stress" in metrics["overall"]
    head = ["config_type", "N", "E MAE", "E RMSE", "F MAE", "F RMSE", "Fx RMSE", "Fy RMSE", "Fz RMSE"]
    head += ["S MAE", "S RMSE"] if has_s else []
    rows = [*metrics["by_config_type"].items(), ("**overall**", metrics["overall"])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in rows:
        cells = [
            name,
            str(m["n_configs"]),
            f"{m['energy']['mae']:.2f}",
            f"{m['energy']['rmse']:.2f}",
            f"{m['forces']['mae']:.1f}",
            f"{m['forces']['rmse']:.1f}",
            *(f"{m['forces'][c]['rmse']:.1f}" for c in COMPONENTS),
        ]
        if has_s:
            cells += [f"{m['stress']['mae']:.3f}", f"{m['stress']['rmse']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    units = "Energies in meV/atom, forces in meV/Å, stresses in meV/Å³ (1 meV/Å³ = 0.1602 GPa)."
    return "\n".join(lines) + "\n\n" + units + "\n"


def plot_parity(p: Predictions, outdir: Path) -> dict[str, Path]:
    """Parity plots: energy per atom (eV/atom) and force components (eV/Å), coloured by config_type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    types = np.array(p.config_types)
    names = sorted(set(p.config_types))
    files = {}
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    for t in names:
        m = types == t
        ax.scatter(p.energy_ref[m] / p.n_atoms[m], p.energy_pred[m] / p.n_atoms[m], s=10, label=t)
    _diag(ax, "reference energy (eV/atom)", "MACE energy (eV/atom)")
    ax.legend(fontsize=7)
    files["parity_energy"] = outdir / "parity_energy.png"
    fig.tight_layout()
    fig.savefig(files["parity_energy"], dpi=130)
    plt.close(fig)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.8))
    atypes = np.repeat(types, p.n_atoms)
    for i, (ax, c) in enumerate(zip(axes, COMPONENTS, strict=True)):
        for t in names:
            m = atypes == t
            ax.scatter(p.forces_ref[m, i], p.forces_pred[m, i], s=3, label=t)
        _diag(ax, f"reference F{c} (eV/Å)", f"MACE F{c} (eV/Å)")
    axes[0].legend(fontsize=7, markerscale=2)
    files["parity_forces"] = outdir / "parity_forces.png"
    fig.tight_layout()
    fig.savefig(files["parity_forces"], dpi=130)
    plt.close(fig)
    return files


def _diag(ax, xlabel: str, ylabel: str) -> None:
    lo, hi = (min(ax.get_xlim()[0], ax.get_ylim()[0]), max(ax.get_xlim()[1], ax.get_ylim()[1]))
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel=xlabel, ylabel=ylabel)


def write_predictions(frames: list[Atoms], p: Predictions, path: Path) -> None:
    """Extxyz with the labels plus ``MACE_energy``, ``MACE_forces`` (``MACE_stress``, ``MACE_forces_std``).

    ``MACE_forces_std`` is a committee's σ_F per atom (eV/Å, :func:`.uncertainty.forces_std`).
    """
    from ase.io import write

    sigma = forces_std(p.forces_members) if p.forces_members is not None else None
    out = []
    start = 0
    for i, a in enumerate(frames):
        b = a.copy()
        b.info["MACE_energy"] = float(p.energy_pred[i])
        b.arrays["MACE_forces"] = p.forces_pred[start : start + len(a)]
        if sigma is not None:
            b.arrays["MACE_forces_std"] = sigma[start : start + len(a)]
        if p.stress_pred is not None:
            b.info["MACE_stress"] = p.stress_pred[i]
        start += len(a)
        out.append(b)
    write(path, out, format="extxyz")


def evaluate(
    settings: EvaluateSettings, outdir: str | Path, record: RunRecord, progress: bool = True
) -> EvaluateResult:
    """Evaluate a mace-torch model file on a labelled extxyz dataset and write the results.

    Writes ``metrics.json``, ``metrics.md``, ``predictions.extxyz`` and the parity plots into
    ``outdir``; the prediction time (s) goes into ``record``. A committee folder as the model:
    the committee mean is evaluated and σ_F calibrated (``calibration.png``,
    ``metrics["uncertainty"]``, :mod:`.uncertainty`).

    Raises
    ------
    InputError, ModelError
        Bad dataset or model file (one line naming the file).
    """
    s = settings
    out = Path(outdir)
    paths = committee_models(s.model) if s.model.is_dir() else [s.model]
    mdls = load_members(paths, s.device)
    head = resolve_head(mdls[0], s.head, str(paths[0]))
    frames = read_dataset(s.data, s.energy_key, s.forces_key)
    check_elements(frames, mdls[0], s.data, s.model)
    with record.timer("predict"):
        pred = predict(
            mdls if len(mdls) > 1 else mdls[0],
            frames,
            s.batch_size,
            s.device,
            head,
            s.energy_key,
            s.forces_key,
            s.stress_key,
            progress,
        )
    metrics = compute_metrics(pred)
    metrics["data"] = str(s.data)
    metrics["model"] = str(s.model)
    out.mkdir(parents=True, exist_ok=True)
    uncertainty, calibration = None, None
    if pred.forces_members is not None:
        uncertainty, calibration = calibrate_predictions(pred, s.target_force_error, out)
        metrics["uncertainty"] = uncertainty
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    atomic_write_text(out / "metrics.md", markdown_table(metrics))
    write_predictions(frames, pred, out / "predictions.extxyz")
    figures = plot_parity(pred, out)
    return EvaluateResult(
        outdir=out,
        metrics=metrics,
        metrics_json=out / "metrics.json",
        metrics_md=out / "metrics.md",
        predictions=out / "predictions.extxyz",
        parity_energy=figures["parity_energy"],
        parity_forces=figures["parity_forces"],
        energy_rmse=metrics["overall"]["energy"]["rmse"],
        forces_rmse=metrics["overall"]["forces"]["rmse"],
        calibration=calibration,
        uncertainty=uncertainty,
    )
