"""Small untrained MACE models for tests and benchmarks of the LAMMPS coupling.

A freshly initialised ``ScaleShiftMACE`` is a smooth, many-body, equivariant function of the
positions: enough to check that LAMMPS and mace-torch's ASE calculator evaluate the same model
identically, and to time the plugin. It is not a force field.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal

import numpy as np
from ase.data import atomic_numbers

logger = logging.getLogger(__name__)

Dtype = Literal["float64", "float32"]


def random_mace(
    elements: tuple[str, ...] = ("W", "Se"),
    r_max: float = 5.0,
    num_interactions: int = 2,
    channels: int = 8,
    max_ell: int = 2,
    correlation: int = 2,
    dtype: Dtype = "float64",
    seed: int = 0,
    max_L: int = 1,
    num_bessel: int = 6,
    radial_mlp: tuple[int, ...] | None = None,
    mlp_irreps: str = "8x0e",
):
    """Build a randomly initialised ``mace.modules.ScaleShiftMACE``.

    Parameters
    ----------
    elements
        Chemical symbols the model knows; stored sorted by atomic number.
    r_max
        Cutoff radius (Å).
    num_interactions
        Message-passing layers; the LAMMPS ghost shell is ``num_interactions * r_max``.
    channels
        Number of channels of the hidden irreps (``0e + 1o``; ``0e`` only with ``max_L=0``).
    dtype
        Parameter dtype.
    seed
        Seed of the weight initialisation.
    max_L
        Highest irrep order of the hidden features (0: scalar messages, as in the quick config).
    num_bessel
        Radial Bessel functions (mace-torch ``num_radial_basis``).
    radial_mlp
        Hidden widths of the radial MLP (None: mace-torch's default, 64, 64, 64).
    mlp_irreps
        Irreps of the readout MLP (mace-torch ``MLP_irreps``).

    Returns
    -------
    torch.nn.Module
        The model, in evaluation mode. Atomic reference energies are -1 eV × Z / 10.
    """
    import torch
    from mace import modules  # first: mace sets torch.load options that e3nn needs

    # isort: split
    from e3nn import o3

    torch.manual_seed(seed)
    zs = sorted(atomic_numbers[s] for s in elements)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if dtype == "float64" else torch.float32)
    try:
        block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
        model = modules.ScaleShiftMACE(
            r_max=r_max,
            num_bessel=num_bessel,
            num_polynomial_cutoff=5,
            max_ell=max_ell,
            interaction_cls=block,
            interaction_cls_first=block,
            num_interactions=num_interactions,
            num_elements=len(zs),
            hidden_irreps=o3.Irreps(f"{channels}x0e + {channels}x1o" if max_L else f"{channels}x0e"),
            MLP_irreps=o3.Irreps(mlp_irreps),
            atomic_energies=np.array([-0.1 * z for z in zs]),
            avg_num_neighbors=10.0,
            atomic_numbers=zs,
            correlation=correlation,
            gate=torch.nn.functional.silu,
            atomic_inter_scale=1.0,
            atomic_inter_shift=0.0,
            **({"radial_MLP": list(radial_mlp)} if radial_mlp else {}),
        )
    finally:
        torch.set_default_dtype(old)
    return model.eval()


def save_lammps_model(model, path: str | Path, sidecar: dict | None = None) -> Path:
    """Write ``model`` as a LAMMPS MACE TorchScript file (``*.model-lammps.pt``).

    Wraps the model in mace-torch's ``LAMMPS_MACE``, scripts it with e3nn's ``jit.compile``
    and saves it; a JSON sidecar ``<path>.json`` records elements, r_max, layers and dtype.

    Parameters
    ----------
    model
        A mace-torch model (``MACE`` or ``ScaleShiftMACE``).
    path
        Output file; by convention it ends in ``.model-lammps.pt``.
    sidecar
        Extra entries for the JSON sidecar.

    Returns
    -------
    Path
        The written file.
    """
    import copy

    import torch
    from ase.data import chemical_symbols
    from mace.calculators import LAMMPS_MACE

    # isort: split
    from e3nn.util import jit

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    wrapped = LAMMPS_MACE(copy.deepcopy(model).to("cpu"))
    jit.compile(wrapped).save(str(p))
    dtype = next(model.parameters()).dtype
    meta = {
        "elements": [chemical_symbols[int(z)] for z in model.atomic_numbers],
        "r_max": float(model.r_max),
        "num_interactions": int(model.num_interactions),
        "dtype": str(dtype).removeprefix("torch."),
        "format": "mace-torch LAMMPS_MACE TorchScript",
    }
    meta.update(sidecar or {})
    Path(str(p) + ".json").write_text(json.dumps(meta, indent=1) + "\n")
    logger.info("wrote %s (%s)", p, meta)
    torch.jit.load(str(p))  # fail here, not in LAMMPS, if the file is unreadable
    return p
