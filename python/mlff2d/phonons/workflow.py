"""Phonon workflows: the pristine primitive cell and a defective supercell.

Each workflow takes a structure, an ASE calculator (for relaxation) and a force engine (for the
displaced supercells), writes into one output folder and exposes ``run()``, ``results`` and
``output_files``. Displacement forces are cached per displacement under ``forces/``, and the
relaxed structure in ``relaxed.extxyz``, so an interrupted run resumes.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.io import read, write

from mlff2d.errors import StructureError
from mlff2d.phonons import core, local, unfold
from mlff2d.phonons.engine import ForceEngine, structure_key
from mlff2d.phonons.results import DOS, BandStructure, Modes, ShellPDOS, SpectralMap
from mlff2d.runinfo import RunRecord
from mlff2d.structures.shells import distances_from, shell_edges
from mlff2d.units import THZ_TO_CM1

logger = logging.getLogger(__name__)


@dataclass
class PhononSettings:
    """Settings of the phonon workflows (keys equal the CLI option names)."""

    supercell: tuple[int, int] = (6, 6)
    displacement: float = 0.01
    relax: bool = True
    fmax: float = 1e-4
    defect_fmax: float = 2e-3
    symmetrize: bool = True
    npoints: int = 51
    mesh: int = 30
    defect_mesh: int = 2
    sigma: float = 0.05
    pitch: float = 0.01
    unfold_npoints: int = 31
    unfold_sigma: float = 0.1
    shell_width: float = 2.0
    localisation_radius: float = 4.0
    n_localised: int = 20
    figures: bool = True


class PhononWorkflow:
    """Shared base: structure, calculator, force engine, output folder, record."""

    kind = ""

    def __init__(
        self,
        atoms: Atoms,
        calculator: Any,
        engine: ForceEngine,
        outdir: str | Path,
        settings: PhononSettings | None = None,
        progress: bool = True,
    ) -> None:
        self.atoms = atoms
        self.calculator = calculator
        self.engine = engine
        self.outdir = Path(outdir)
        self.settings = settings or PhononSettings()
        self.progress = progress
        self.record = RunRecord(f"phonons/{self.kind}")
        self.output_files: dict[str, Path] = {}
        self.phonon: Any = None
        self.relaxed: Atoms | None = None
        self._results: dict[str, Any] | None = None

    @property
    def results(self) -> dict[str, Any]:
        """Scalar results of :meth:`run`."""
        if self._results is None:
            raise RuntimeError(f"{type(self).__name__}.run() has not been called")
        return self._results

    def _out(self, name: str, filename: str) -> Path:
        p = self.outdir / filename
        self.output_files[name] = p
        return p

    def _relaxed(self, cell: bool, fmax: float) -> Atoms:
        """Relax (or reuse ``relaxed.extxyz`` from an earlier run on the same input)."""
        path = self._out("relaxed", "relaxed.extxyz")
        key = f"{structure_key(self.atoms)}-{cell}-{fmax}-{type(self.calculator).__name__}"
        if path.is_file():
            old = read(path)
            if old.info.get("input_key") == key:
                logger.info("reusing %s", path)
                return old
        self.outdir.mkdir(parents=True, exist_ok=True)
        if not self.settings.relax:
            out = self.atoms.copy()
        else:
            with self.record.timer("relax"):
                out = core.relax(
                    self.atoms, self.calculator, fmax=fmax, cell=cell, logfile=self.outdir / "relax.log"
                )
        out.info["input_key"] = key
        self.outdir.mkdir(parents=True, exist_ok=True)
        write(path, out, format="extxyz")
        return out

    def _force_constants(self, unitcell: Atoms, repeat: tuple[int, int], symprec: float) -> int:
        self.phonon = core.make_phonopy(unitcell, repeat, symprec=symprec)
        with self.record.timer("forces"):
            n_new = core.produce_force_constants(
                self.phonon,
                self.engine,
                self.outdir / "forces",
                self.settings.displacement,
                self.settings.symmetrize,
                self.progress,
            )
        disp = self.phonon.displacements if self.phonon.dataset else []
        self.record.results["displacements"] = len(disp)
        self.record.results["displacements_computed"] = n_new
        core.save_phonopy(self.phonon, self._out("phonopy_params", "phonopy_params.yaml"))
        self.output_files["force_constants"] = self.outdir / "force_constants.hdf5"
        return n_new

    def _write_modes_table(
        self, modes: Modes, name: str, filename: str, index: list[int] | None = None
    ) -> None:
        """Write a CSV table of modes (1-based mode index, THz, cm⁻¹, irrep, IPR, weight)."""
        index = list(range(len(modes.frequencies))) if index is None else index
        with open(self._out(name, filename), "w", newline="") as fh:
            w = csv.writer(fh)
            cols = ["mode", "frequency_THz", "frequency_cm-1", "irrep"]
            extra = [c for c in ("ipr", "defect_weight") if len(getattr(modes, c))]
            w.writerow(cols + extra)
            for i, f in enumerate(modes.frequencies):
                row = [
                    index[i] + 1,
                    f"{f:.5f}",
                    f"{f * THZ_TO_CM1:.3f}",
                    modes.labels[i] if modes.labels else "",
                ]
                w.writerow(row + [f"{getattr(modes, c)[i]:.5f}" for c in extra])


class PristinePhonons(PhononWorkflow):
    """Phonons of a pristine primitive cell: bands, DOS, PDOS, Γ modes with irreps."""

    kind = "pristine"

    def run(self) -> dict[str, Any]:
        """Relax, compute force constants, bands, DOS and Γ modes; write files."""
        s = self.settings
        self.relaxed = self._relaxed(cell=True, fmax=s.fmax)
        self._force_constants(self.relaxed, tuple(s.supercell), symprec=1e-5)
        with self.record.timer("spectra"):
            self.bands = core.band_path(self.phonon, s.npoints)
            self.phonon.write_yaml_band_structure(filename=self._out("band_yaml", "band.yaml"))
            self.bands.write(self._out("bands", "bands.npz"))
            self.grid = core.frequency_grid(
                min(-0.5, self.bands.frequencies.min() - 0.2), self.bands.frequencies.max() + 0.5, s.pitch
            )
            freqs, self.atom_pdos = core.mesh_pdos(self.phonon, (s.mesh, s.mesh, 1), s.sigma, self.grid)
            self.phonon.write_projected_dos(filename=self._out("pdos_dat", "projected_dos.dat"))
            symbols = list(self.phonon.primitive.symbols)
            self.dos = core.element_dos(symbols, freqs, self.atom_pdos, s.sigma, directions=True)
            self.dos.write(self._out("dos", "dos.npz"))
            self.phonon.run_total_dos(
                sigma=s.sigma, freq_min=float(self.grid[0]), freq_max=float(self.grid[-1]), freq_pitch=s.pitch
            )
            self.phonon.write_total_dos(filename=self._out("total_dos_dat", "total_dos.dat"))
            self.gamma = core.gamma_modes(self.phonon)
            self.gamma.write(self._out("gamma", "gamma_modes.npz"))
            self._write_modes_table(self.gamma, "gamma_table", "gamma_modes.csv")
        if s.figures:
            from mlff2d.phonons import plots

            with self.record.timer("figures"):
                for ext, p in plots.plot_bands_pdos(
                    self.bands, self.dos, self.gamma, self.outdir / "phonon_bands_pdos"
                ).items():
                    self.output_files[f"phonon_bands_pdos_{ext}"] = p
        near = np.linalg.norm(self.bands.qpoints, axis=1) < 0.15
        self._results = {
            "a_A": float(self.relaxed.cell.lengths()[0]),
            "min_frequency_THz": float(self.bands.frequencies.min()),
            "min_frequency_near_gamma_THz": float(self.bands.frequencies[near].min()),
            "max_frequency_THz": float(self.bands.frequencies.max()),
            "gamma_modes": [
                {"THz": round(float(f), 4), "cm-1": round(float(f) * THZ_TO_CM1, 2), "irrep": lab}
                for f, lab in zip(self.gamma.frequencies, self.gamma.labels, strict=True)
            ],
        }
        self.record.results.update(self._results)
        return self._results

    def atom_pdos_on(self, grid: np.ndarray) -> np.ndarray:
        """Per-atom PDOS (n_primitive_atoms, n_f), summed over directions, on ``grid`` (THz)."""
        s = self.settings
        _, pd = core.mesh_pdos(self.phonon, (s.mesh, s.mesh, 1), s.sigma, grid)
        return pd.sum(axis=1)


class DefectPhonons(PhononWorkflow):
    """Phonons of a defective supercell compared with the pristine crystal.

    Parameters
    ----------
    atoms
        The defect supercell with ``info["defect_center"]`` (Cartesian Å); it is rescaled to
        the relaxed pristine lattice before its positions are relaxed.
    pristine
        A finished :class:`PristinePhonons` of the same material.
    """

    kind = "defect"

    def __init__(
        self,
        atoms: Atoms,
        calculator: Any,
        engine: ForceEngine,
        outdir: str | Path,
        pristine: PristinePhonons,
        settings: PhononSettings | None = None,
        progress: bool = True,
    ) -> None:
        if "defect_center" not in atoms.info:
            raise StructureError(
                "the defect cell has no info['defect_center']",
                "build it with `mlff2d structure --defect ...`",
            )
        self.pristine = pristine
        self.repeat = _repeat_of(atoms, pristine.relaxed)
        super().__init__(
            _on_lattice(atoms, pristine.relaxed, self.repeat), calculator, engine, outdir, settings, progress
        )

    def run(self) -> dict[str, Any]:
        """Relax positions, force constants, Γ localisation, DOS, shells, unfolding; write."""
        s = self.settings
        self.relaxed = self._relaxed(cell=False, fmax=s.defect_fmax)
        center = np.asarray(self.atoms.info["defect_center"], dtype=float)
        self._force_constants(self.relaxed, (1, 1), symprec=1e-4)
        ideal = self.pristine.relaxed.repeat((*self.repeat, 1))
        ideal.set_cell(self.relaxed.cell, scale_atoms=False)
        with self.record.timer("localisation"):
            self.modes = self._gamma_localisation(center)
        with self.record.timer("dos"):
            self._dos_and_shells(ideal, center)
        with self.record.timer("unfolding"):
            self._unfold(ideal)
        if s.figures:
            self._figures()
        order = np.argsort(-self.modes.defect_weight)
        self._results = {
            "n_atoms": len(self.relaxed),
            "repeat": list(self.repeat),
            "min_frequency_THz": float(self.modes.frequencies.min()),
            "most_localised_modes": [
                {
                    "THz": round(float(self.modes.frequencies[i]), 4),
                    "ipr": round(float(self.modes.ipr[i]), 4),
                    "defect_weight": round(float(self.modes.defect_weight[i]), 4),
                }
                for i in order[:5]
            ],
        }
        self.record.results.update(self._results)
        return self._results

    def _gamma_localisation(self, center: np.ndarray) -> Modes:
        s = self.settings
        self.phonon.run_qpoints([[0, 0, 0]], with_eigenvectors=True)
        freqs = np.asarray(self.phonon.qpoints.frequencies[0])
        w = local.atom_weights(np.asarray(self.phonon.qpoints.eigenvectors[0]))
        self.distances = distances_from(self.relaxed, center)
        modes = Modes(
            frequencies=freqs,
            labels=[""] * len(freqs),
            ipr=local.ipr(w),
            defect_weight=local.defect_weight(w, self.distances, s.localisation_radius),
        )
        modes.write(self._out("gamma", "gamma_modes.npz"))
        self._write_modes_table(modes, "gamma_table", "gamma_modes.csv")
        order = [i for i in np.argsort(-modes.defect_weight) if freqs[i] > 0.5][: s.n_localised]
        loc = Modes(
            frequencies=freqs[order],
            labels=[""] * len(order),
            ipr=modes.ipr[order],
            defect_weight=modes.defect_weight[order],
        )
        self._write_modes_table(loc, "localised_modes", "localised_modes.csv", index=order)
        return modes

    def _dos_and_shells(self, ideal: Atoms, center: np.ndarray) -> None:
        s = self.settings
        p = self.pristine
        fmax = max(p.grid[-1], float(self.modes.frequencies.max()) + 0.5)
        self.grid = core.frequency_grid(min(p.grid[0], self.modes.frequencies.min() - 0.2), fmax, s.pitch)
        k = s.defect_mesh
        freqs, pd = core.mesh_pdos(self.phonon, (k, k, 1), s.sigma, self.grid)
        self.phonon.write_projected_dos(filename=self._out("pdos_dat", "projected_dos.dat"))
        symbols = list(self.relaxed.get_chemical_symbols())
        self.dos = core.element_dos(symbols, freqs, pd, s.sigma, directions=False)
        self.dos.write(self._out("dos", "dos.npz"))
        prim_pd = p.atom_pdos_on(self.grid)
        n_prim = len(p.relaxed)
        self.pristine_dos = core.element_dos(
            list(p.relaxed.get_chemical_symbols()),
            freqs,
            np.repeat(prim_pd[:, None, :] / 3, 3, axis=1),
            s.sigma,
            directions=False,
        )
        self.pristine_dos.write(self._out("pristine_dos", "pristine_dos.npz"))
        d_ideal = distances_from(ideal, center)
        edges = shell_edges(np.concatenate([self.distances, d_ideal]), s.shell_width)
        self.shells = local.shell_pdos(pd.sum(axis=1), self.distances, edges, freqs)
        ideal_pd = prim_pd[np.arange(len(ideal)) % n_prim]
        self.pristine_shells = local.shell_pdos(ideal_pd, d_ideal, edges, freqs)
        self.shells.write(self._out("shells", "local_pdos_defect.npz"))
        self.pristine_shells.write(self._out("pristine_shells", "local_pdos_pristine.npz"))

    def _unfold(self, ideal: Atoms) -> None:
        s = self.settings
        mapping = unfold.site_mapping(ideal, self.relaxed)
        rec = self.pristine.relaxed.cell.reciprocal()
        dist, freqs, weights, ticks, labels = unfold.unfold_path(
            self.phonon, ideal, mapping, self.repeat, s.unfold_npoints, np.asarray(rec)
        )
        self.unfolded = unfold.spectral_map(dist, freqs, weights, self.grid, s.unfold_sigma, ticks, labels)
        self.unfolded.write(self._out("unfolded", "unfolded.npz"))

    def _figures(self) -> None:
        from mlff2d.phonons import plots

        n, m = self.repeat
        with self.record.timer("figures"):
            made = {
                f"compare_{n}x{m}_band_pdos": plots.plot_compare_band_pdos(
                    self.pristine.bands,
                    self.unfolded,
                    self.pristine_dos,
                    self.dos,
                    self.outdir / f"compare_{n}x{m}_band_pdos",
                ),
                "local_pdos_overview": plots.plot_local_pdos(
                    self.pristine_shells, self.shells, self.outdir / "local_pdos_overview"
                ),
                "ipr": plots.plot_ipr(self.modes, len(self.relaxed), self.outdir / "ipr"),
            }
            for name, files in made.items():
                for ext, p in files.items():
                    self.output_files[f"{name}_{ext}"] = p


def _repeat_of(defect: Atoms, primitive: Atoms) -> tuple[int, int]:
    """Return the N×M repetition of ``primitive`` that ``defect`` is a supercell of."""
    ratio = defect.cell.lengths()[:2] / primitive.cell.lengths()[:2]
    rep = np.rint(ratio).astype(int)
    if np.any(rep < 1) or np.any(np.abs(ratio / np.maximum(rep, 1) - 1) > 0.05):
        raise StructureError(
            f"the defect cell is not an N×M supercell of the primitive cell "
            f"(ratios {ratio.round(3).tolist()})",
            "build it with `mlff2d structure --supercell N M --defect ...`",
        )
    return int(rep[0]), int(rep[1])


def _on_lattice(defect: Atoms, primitive: Atoms, repeat: tuple[int, int]) -> Atoms:
    """``defect`` rescaled in-plane to the relaxed lattice (vacuum kept), centre moved along."""
    a = defect.copy()
    frac_c = np.linalg.solve(a.cell.array.T, np.asarray(a.info["defect_center"], dtype=float))
    cell = a.cell.array.copy()
    cell[0] = primitive.cell.array[0] * repeat[0]
    cell[1] = primitive.cell.array[1] * repeat[1]
    a.set_cell(cell, scale_atoms=True)
    a.info["defect_center"] = (frac_c @ a.cell.array).tolist()
    a.pbc = True
    return a


__all__ = [
    "DOS",
    "BandStructure",
    "DefectPhonons",
    "PhononSettings",
    "PristinePhonons",
    "ShellPDOS",
    "SpectralMap",
]
