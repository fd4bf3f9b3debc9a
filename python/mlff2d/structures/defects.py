"""Point defects in 2H MX2 supercells, as a registry of defect kinds.

Names follow the usual Kröger–Vink-like convention used in the literature and in datasets:

========  =======================================  ==========================
name      meaning                                  kind
========  =======================================  ==========================
``V_X``   one top-layer chalcogen missing (V_Se)   ``vacancy``
``V_X2``  both chalcogens of one column (V_Se2)    ``column_vacancy``
``V_M``   metal vacancy (V_W)                      ``vacancy``
``A_B``   element A on a B site (Se_W, W_Se,       ``substitution``
          dopants Mo_W, S_Se)
========  =======================================  ==========================

Every defective cell records ``info["defect"]``, ``info["config_type"]`` (the name) and
``info["defect_center"]`` (Cartesian, Å), so radial analyses never guess where it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from mlff2d.errors import StructureError


@dataclass(frozen=True)
class DefectSpec:
    """A parsed defect name.

    Attributes
    ----------
    name
        The name as given (``"V_Se"``).
    kind
        Registry key: ``"vacancy"``, ``"column_vacancy"`` or ``"substitution"``.
    site_element
        Element of the host site.
    new_element
        Element placed on the site (substitutions only).
    """

    name: str
    kind: str
    site_element: str
    new_element: str | None = None


def _host_elements(atoms: Atoms) -> tuple[str, str]:
    syms = set(atoms.get_chemical_symbols())
    metal = next((s for s in ("W", "Mo") if s in syms), None)
    chalc = next((s for s in ("Se", "S", "Te") if s in syms), None)
    if metal is None or chalc is None:
        raise StructureError("cannot find the host metal and chalcogen in the structure")
    return metal, chalc


def parse_defect(name: str, metal: str, chalcogen: str) -> DefectSpec:
    """Parse a defect name for host ``metal``/``chalcogen``.

    Raises
    ------
    StructureError
        If the name is not a known pattern or names elements that do not fit the host.
    """
    hint = f"use one of {', '.join(defect_names(metal, chalcogen))}, or A_B (element A on a B site)"
    m = re.fullmatch(r"V_([A-Z][a-z]?)(2?)", name)
    if m:
        el, two = m.groups()
        if el not in (metal, chalcogen):
            raise StructureError(f"defect '{name}': {el} is not in the host {metal}{chalcogen}2", hint)
        if two and el != chalcogen:
            raise StructureError(f"defect '{name}': only chalcogen columns can be removed in pairs", hint)
        return DefectSpec(name, "column_vacancy" if two else "vacancy", el)
    m = re.fullmatch(r"([A-Z][a-z]?)_([A-Z][a-z]?)", name)
    if m:
        new, site = m.groups()
        if new not in atomic_numbers:
            raise StructureError(f"defect '{name}': unknown element '{new}'", hint)
        if site not in (metal, chalcogen):
            raise StructureError(f"defect '{name}': {site} is not in the host {metal}{chalcogen}2", hint)
        if new == site:
            raise StructureError(f"defect '{name}' replaces {site} by itself", hint)
        return DefectSpec(name, "substitution", site, new)
    raise StructureError(f"unknown defect '{name}'", hint)


def defect_names(metal: str = "W", chalcogen: str = "Se") -> list[str]:
    """The standard defect names for a host, e.g. ``V_Se, V_Se2, V_W, Se_W, W_Se``."""
    M, X = metal, chalcogen
    other_m = "Mo" if M == "W" else "W"
    return [f"V_{X}", f"V_{X}2", f"V_{M}", f"{X}_{M}", f"{M}_{X}", f"{other_m}_{M}"]


def central_site(atoms: Atoms, candidates: np.ndarray) -> int:
    """Index (into ``atoms``) of the candidate closest in-plane to the cell centre."""
    centre = (np.array([0.5, 0.5, 0.0]) @ atoms.cell.array)[:2]
    d = atoms.positions[candidates, :2] - centre
    # minimum image in-plane through fractional coordinates
    frac = np.linalg.solve(atoms.cell.array[:2, :2].T, d.T).T
    frac -= np.round(frac)
    dist = np.linalg.norm(frac @ atoms.cell.array[:2, :2], axis=1)
    return int(candidates[np.argmin(dist)])


def _site_candidates(atoms: Atoms, spec: DefectSpec, top_only: bool) -> np.ndarray:
    syms = np.array(atoms.get_chemical_symbols())
    idx = np.flatnonzero(syms == spec.site_element)
    if top_only:
        zmid = atoms.positions[syms == _host_elements(atoms)[0], 2].mean()
        idx = idx[atoms.positions[idx, 2] > zmid]
    if idx.size == 0:
        raise StructureError(f"defect '{spec.name}': no {spec.site_element} site in the structure")
    return idx


def _pick_site(atoms: Atoms, spec: DefectSpec, site: int | None, top_only: bool) -> int:
    cands = _site_candidates(atoms, spec, top_only)
    if site is None:
        return central_site(atoms, cands)
    if not 0 <= site < len(atoms):
        raise StructureError(
            f"defect site index {site} is out of range", f"use an index in 0..{len(atoms) - 1}"
        )
    if site not in cands:
        where = "top-layer " if top_only else ""
        raise StructureError(
            f"atom {site} is {atoms[site].symbol}, not a {where}{spec.site_element} site for '{spec.name}'",
            f"pick one of e.g. {cands[:5].tolist()} or omit the site for the central one",
        )
    return int(site)


def _vacancy(atoms: Atoms, spec: DefectSpec, site: int | None) -> tuple[Atoms, np.ndarray]:
    is_chalc = spec.site_element != _host_elements(atoms)[0]
    i = _pick_site(atoms, spec, site, top_only=is_chalc)
    centre = atoms.positions[i].copy()
    out = atoms.copy()
    del out[i]
    return out, centre


def _column_vacancy(atoms: Atoms, spec: DefectSpec, site: int | None) -> tuple[Atoms, np.ndarray]:
    i = _pick_site(atoms, spec, site, top_only=False)
    syms = np.array(atoms.get_chemical_symbols())
    same = np.flatnonzero(syms == spec.site_element)
    same = same[same != i]
    d = atoms.get_distances(i, same, mic=True, vector=True)
    inplane = np.linalg.norm(d[:, :2], axis=1)
    j = int(same[np.argmin(inplane + 1e-3 * np.abs(d[:, 2]))])
    if inplane.min() > 0.1:
        raise StructureError(f"defect '{spec.name}': no chalcogen column partner for atom {i}")
    centre = atoms.positions[i] + 0.5 * atoms.get_distance(i, j, mic=True, vector=True)
    out = atoms.copy()
    del out[[i, j]]
    return out, centre


def _substitution(atoms: Atoms, spec: DefectSpec, site: int | None) -> tuple[Atoms, np.ndarray]:
    is_chalc = spec.site_element != _host_elements(atoms)[0]
    i = _pick_site(atoms, spec, site, top_only=is_chalc)
    out = atoms.copy()
    out[i].symbol = spec.new_element
    return out, atoms.positions[i].copy()


#: Defect kind -> builder(atoms, spec, site) -> (defective atoms, defect centre in Å).
DEFECTS: dict[str, Callable[[Atoms, DefectSpec, int | None], tuple[Atoms, np.ndarray]]] = {
    "vacancy": _vacancy,
    "column_vacancy": _column_vacancy,
    "substitution": _substitution,
}


def make_defect(atoms: Atoms, name: str, site: int | None = None) -> Atoms:
    """Return a copy of ``atoms`` with the defect ``name`` at ``site`` (default: central).

    Parameters
    ----------
    atoms
        A pristine 2H MX2 (super)cell.
    name
        Defect name, e.g. ``"V_Se"``, ``"V_Se2"``, ``"V_W"``, ``"Se_W"``, ``"Mo_W"``.
    site
        Index of the host atom to act on. For ``V_X`` and chalcogen substitutions it must be
        a top-layer chalcogen; default: the suitable site closest to the cell centre.

    Returns
    -------
    ase.Atoms
        With ``info["defect"]``, ``info["config_type"]`` and ``info["defect_center"]`` (Å).
    """
    metal, chalc = _host_elements(atoms)
    spec = parse_defect(name, metal, chalc)
    out, centre = DEFECTS[spec.kind](atoms, spec, site)
    out.info = dict(atoms.info)
    out.info["defect"] = name
    out.info["config_type"] = name
    out.info["defect_center"] = np.asarray(centre, dtype=float)
    return out
