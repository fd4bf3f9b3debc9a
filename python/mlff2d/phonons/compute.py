"""The computations of the phonons stage: the pristine primitive cell and a defective supercell.

:class:`PristinePhonons` and :class:`DefectPhonons` take a structure, an ASE calculator (for
relaxation) and a force engine (for the displaced supercells), write into one folder and return
the typed results of :mod:`.stage`. Displacement forces are cached per displacement under
``forces/``, and the relaxed structure in ``relaxed.extxyz``, so an interrupted run resumes.
:class:`mlff2d.phonons.stage.PhononsWorkflow` runs them.
"""

from __future__ import annotations

import csv
import logging
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.io import read, write

from mlff2d.errors import StructureError
from mlff2d.phonons import core, local, unfold
from mlff2d.phonons.engines import ForceEngine
from mlff2d.phonons.results import Modes
from mlff2d.phonons.stage import DefectPhononsResult, PhononsSettings, PristinePhononsResult
from mlff2d.runinfo import RunRecord, atomic_path
from mlff2d.structures.io import structure_key
from mlff2d.structures.shells import distances_from, shell_edges
from mlff2d.units import THZ_TO_CM1

logger = logging.getLogger(__name__)

#: result field -> file name, in ``pristine/``.
PRISTINE_FILES = {
    "relaxed": "relaxed.extxyz",
    "phonopy_params": "phonopy_params.yaml",
    "force_constants": "force_constants.hdf5",
    "band_yaml": "band.yaml",
    "bands": "bands.npz",
    "dos": "dos.npz",
    "pdos_dat": "projected_dos.dat",
    "total_dos_dat": "total_dos.dat",
    "gamma": "gamma_modes.npz",
    "gamma_table": "gamma_modes.csv",
}
#: result field -> file name, in ``defect/``.
DEFECT_FILES = {
    "relaxed": "relaxed.extxyz",
    "phonopy_params": "phonopy_params.yaml",
    "force_constants": "force_constants.hdf5",
    "gamma": "gamma_modes.npz",
    "gamma_table": "gamma_modes.csv",
    "localised_modes": "localised_modes.csv",
    "dos": "dos.npz",
    "pdos_dat": "projected_dos.dat",
    "pristine_dos": "pristine_dos.npz",
    "shells": "local_pdos_defect.npz",
    "pristine_shells": "local_pdos_pristine.npz",
    "unfolded": "unfolded.npz",
}


class PhononCell:
    """Shared base: structure, calculator, force engine, output folder, timings.

    Parameters
    ----------
    atoms
        The structure (not modified).
    calculator
        ASE calculator for the relaxation.
    engine
        Force engine for the displaced supercells.
    outdir
        Output folder.
    settings
        The stage's settings (defaults of :class:`~mlff2d.phonons.stage.PhononsSettings`).
    progress
        Show progress bars.
    record
        The stage's record; timings go into it as ``<kind>.<step>``.
    """

    kind = ""
    files: dict[str, str] = {}

    def __init__(
        self,
        atoms: Atoms,
        calculator: Any,
        engine: ForceEngine,
        outdir: str | Path,
        settings: PhononsSettings | None = None,
        progress: bool = True,
        record: RunRecord | None = None,
    ) -> None:
        self.atoms = atoms
        self.calculator = calculator
        self.engine = engine
        self.outdir = Path(outdir)
        self.settings = settings or PhononsSettings()
        self.progress = progress
        self.record = record if record is not None else RunRecord(f"phonons {self.kind}")
        self.path = {name: self.outdir / filename for name, filename in self.files.items()}
        self.phonon: Any = None
        self.relaxed: Atoms | None = None
        self.displacements = (0, 0)

    def _timer(self, step: str) -> AbstractContextManager[None]:
        return self.record.timer(f"{self.kind}.{step}")

    def _relaxed(self, cell: bool, fmax: float) -> Atoms:
        """Relax (or reuse ``relaxed.extxyz`` from an earlier run on the same input).

        Parameters
        ----------
        cell
            Relax the in-plane lattice too.
        fmax
            Force tolerance (eV/Å).
        """
        path = self.path["relaxed"]
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
            with self._timer("relax"):
                out = core.relax(
                    self.atoms, self.calculator, fmax=fmax, cell=cell, logfile=self.outdir / "relax.log"
                )
        out.info["input_key"] = key
        with atomic_path(path) as tmp:  # a kill while writing must not leave a cell to reuse
            write(tmp, out, format="extxyz")
        # continue from the file, as a resumed run does, so that the cache keys of the displaced
        # supercells (positions rounded to 1e-8 Å) are the same in both runs
        return read(path)

    def _force_constants(self, unitcell: Atoms, repeat: tuple[int, int], symprec: float) -> None:
        """Force constants of ``unitcell`` in an N×M supercell; saves the Phonopy files."""
        self.phonon = core.make_phonopy(unitcell, repeat, symprec=symprec)
        with self._timer("forces"):
            n_new = core.produce_force_constants(
                self.phonon,
                self.engine,
                self.outdir / "forces",
                self.settings.displacement,
                self.settings.symmetrize,
                self.progress,
            )
        disp = self.phonon.displacements if self.phonon.dataset else []
        self.displacements = (len(disp), n_new)
        core.save_phonopy(self.phonon, self.path["phonopy_params"])

    def _write_modes_table(self, modes: Modes, path: Path, index: list[int] | None = None) -> None:
        """Write a CSV table of modes (1-based mode index, THz, cm⁻¹, irrep, IPR, weight)."""
        index = list(range(len(modes.frequencies))) if index is None else index
        with open(path, "w", newline="") as fh:
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


class PristinePhonons(PhononCell):
    """Phonons of a pristine primitive cell: bands, DOS, PDOS, Γ modes with irreps."""

    kind = "pristine"
    files = PRISTINE_FILES

    def run(self) -> PristinePhononsResult:
        """Relax, compute force constants, bands, DOS and Γ modes; write files."""
        s = self.settings
        self.relaxed = self._relaxed(cell=True, fmax=s.fmax)
        self._force_constants(self.relaxed, tuple(s.supercell), symprec=1e-5)
        with self._timer("spectra"):
            self._spectra()
        figures: dict[str, Path] = {}
        if s.figures:
            from mlff2d.phonons import plots

            with self._timer("figures"):
                stem = self.outdir / "phonon_bands_pdos"
                made = plots.plot_bands_pdos(self.bands, self.dos, self.gamma, stem)
                figures = {f"phonon_bands_pdos_{ext}": p for ext, p in made.items()}
        near = np.linalg.norm(self.bands.qpoints, axis=1) < 0.15
        return PristinePhononsResult(
            self.outdir,
            **self.path,
            a_angstrom=float(self.relaxed.cell.lengths()[0]),
            min_frequency_thz=float(self.bands.frequencies.min()),
            min_frequency_near_gamma_thz=float(self.bands.frequencies[near].min()),
            max_frequency_thz=float(self.bands.frequencies.max()),
            gamma_modes=[
                {"THz": round(float(f), 4), "cm-1": round(float(f) * THZ_TO_CM1, 2), "irrep": lab}
                for f, lab in zip(self.gamma.frequencies, self.gamma.labels, strict=True)
            ],
            displacements=self.displacements[0],
            displacements_computed=self.displacements[1],
            figures=figures,
        )

    def _spectra(self) -> None:
        """Bands on Γ–M–K–Γ, mesh DOS and PDOS, Γ modes: computed and written."""
        s = self.settings
        self.bands = core.band_path(self.phonon, s.npoints)
        self.phonon.write_yaml_band_structure(filename=self.path["band_yaml"])
        self.bands.write(self.path["bands"])
        self.grid = core.frequency_grid(
            min(-0.5, self.bands.frequencies.min() - 0.2), self.bands.frequencies.max() + 0.5, s.pitch
        )
        freqs, self.atom_pdos = core.mesh_pdos(self.phonon, (s.mesh, s.mesh, 1), s.sigma, self.grid)
        self.phonon.write_projected_dos(filename=self.path["pdos_dat"])
        symbols = list(self.phonon.primitive.symbols)
        self.dos = core.element_dos(symbols, freqs, self.atom_pdos, s.sigma, directions=True)
        self.dos.write(self.path["dos"])
        self.phonon.run_total_dos(
            sigma=s.sigma, freq_min=float(self.grid[0]), freq_max=float(self.grid[-1]), freq_pitch=s.pitch
        )
        self.phonon.write_total_dos(filename=self.path["total_dos_dat"])
        self.gamma = core.gamma_modes(self.phonon)
        self.gamma.write(self.path["gamma"])
        self._write_modes_table(self.gamma, self.path["gamma_table"])

    def atom_pdos_on(self, grid: np.ndarray) -> np.ndarray:
        """Per-atom PDOS (n_primitive_atoms, n_f), summed over directions, on ``grid`` (THz)."""
        s = self.settings
        _, pd = core.mesh_pdos(self.phonon, (s.mesh, s.mesh, 1), s.sigma, grid)
        return pd.sum(axis=1)


class DefectPhonons(PhononCell):
    """Phonons of a defective supercell compared with the pristine crystal.

    Parameters
    ----------
    atoms
        The defect supercell with ``info["defect_center"]`` (Cartesian Å); it is rescaled to
        the relaxed pristine lattice before its positions are relaxed.
    pristine
        A finished :class:`PristinePhonons` of the same material.
    calculator, engine, outdir, settings, progress, record
        As for :class:`PhononCell`.
    """

    kind = "defect"
    files = DEFECT_FILES

    def __init__(
        self,
        atoms: Atoms,
        calculator: Any,
        engine: ForceEngine,
        outdir: str | Path,
        pristine: PristinePhonons,
        settings: PhononsSettings | None = None,
        progress: bool = True,
        record: RunRecord | None = None,
    ) -> None:
        if "defect_center" not in atoms.info:
            raise StructureError(
                "the defect cell has no info['defect_center']",
                "build it with `mlff2d structure --defect ...`",
            )
        if pristine.relaxed is None:
            raise RuntimeError("run the pristine phonons first")
        self.pristine = pristine
        self.repeat = _repeat_of(atoms, pristine.relaxed)
        cell = _on_lattice(atoms, pristine.relaxed, self.repeat)
        super().__init__(cell, calculator, engine, outdir, settings, progress, record)

    def run(self) -> DefectPhononsResult:
        """Relax positions, force constants, Γ localisation, DOS, shells, unfolding; write."""
        s = self.settings
        self.relaxed = self._relaxed(cell=False, fmax=s.defect_fmax)
        center = np.asarray(self.atoms.info["defect_center"], dtype=float)
        self._force_constants(self.relaxed, (1, 1), symprec=1e-4)
        ideal = self.pristine.relaxed.repeat((*self.repeat, 1))  # type: ignore[union-attr]
        ideal.set_cell(self.relaxed.cell, scale_atoms=False)
        with self._timer("localisation"):
            self.modes = self._gamma_localisation(center)
        with self._timer("dos"):
            self._dos_and_shells(ideal, center)
        with self._timer("unfolding"):
            self._unfold(ideal)
        figures = self._figures() if s.figures else {}
        order = np.argsort(-self.modes.defect_weight)
        return DefectPhononsResult(
            self.outdir,
            **self.path,
            n_atoms=len(self.relaxed),
            repeat=self.repeat,
            min_frequency_thz=float(self.modes.frequencies.min()),
            most_localised_modes=[
                {
                    "THz": round(float(self.modes.frequencies[i]), 4),
                    "ipr": round(float(self.modes.ipr[i]), 4),
                    "defect_weight": round(float(self.modes.defect_weight[i]), 4),
                }
                for i in order[:5]
            ],
            displacements=self.displacements[0],
            displacements_computed=self.displacements[1],
            figures=figures,
        )

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
        modes.write(self.path["gamma"])
        self._write_modes_table(modes, self.path["gamma_table"])
        order = [i for i in np.argsort(-modes.defect_weight) if freqs[i] > 0.5][: s.n_localised]
        loc = Modes(
            frequencies=freqs[order],
            labels=[""] * len(order),
            ipr=modes.ipr[order],
            defect_weight=modes.defect_weight[order],
        )
        self._write_modes_table(loc, self.path["localised_modes"], index=order)
        return modes

    def _dos_and_shells(self, ideal: Atoms, center: np.ndarray) -> None:
        s = self.settings
        p = self.pristine
        fmax = max(p.grid[-1], float(self.modes.frequencies.max()) + 0.5)
        self.grid = core.frequency_grid(min(p.grid[0], self.modes.frequencies.min() - 0.2), fmax, s.pitch)
        k = s.defect_mesh
        freqs, pd = core.mesh_pdos(self.phonon, (k, k, 1), s.sigma, self.grid)
        self.phonon.write_projected_dos(filename=self.path["pdos_dat"])
        symbols = list(self.relaxed.get_chemical_symbols())  # type: ignore[union-attr]
        self.dos = core.element_dos(symbols, freqs, pd, s.sigma, directions=False)
        self.dos.write(self.path["dos"])
        prim_pd = p.atom_pdos_on(self.grid)
        prim: Atoms = p.relaxed  # type: ignore[assignment]
        self.pristine_dos = core.element_dos(
            list(prim.get_chemical_symbols()),
            freqs,
            np.repeat(prim_pd[:, None, :] / 3, 3, axis=1),
            s.sigma,
            directions=False,
        )
        self.pristine_dos.write(self.path["pristine_dos"])
        d_ideal = distances_from(ideal, center)
        edges = shell_edges(np.concatenate([self.distances, d_ideal]), s.shell_width)
        self.shells = local.shell_pdos(pd.sum(axis=1), self.distances, edges, freqs)
        ideal_pd = prim_pd[np.arange(len(ideal)) % len(prim)]
        self.pristine_shells = local.shell_pdos(ideal_pd, d_ideal, edges, freqs)
        self.shells.write(self.path["shells"])
        self.pristine_shells.write(self.path["pristine_shells"])

    def _unfold(self, ideal: Atoms) -> None:
        s = self.settings
        mapping = unfold.site_mapping(ideal, self.relaxed)
        rec = self.pristine.relaxed.cell.reciprocal()  # type: ignore[union-attr]
        dist, freqs, weights, ticks, labels = unfold.unfold_path(
            self.phonon, ideal, mapping, self.repeat, s.unfold_npoints, np.asarray(rec)
        )
        self.unfolded = unfold.spectral_map(dist, freqs, weights, self.grid, s.unfold_sigma, ticks, labels)
        self.unfolded.write(self.path["unfolded"])

    def _figures(self) -> dict[str, Path]:
        from mlff2d.phonons import plots

        n, m = self.repeat
        with self._timer("figures"):
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
        return {f"{name}_{ext}": p for name, files in made.items() for ext, p in files.items()}


def primitive_cell(structure: str) -> Atoms:
    """The primitive cell of ``structure``: a formula (``WSe2``) or a structure file, checked 2D."""
    from mlff2d.structures import check_2d, monolayer, read_structure

    atoms = read_structure(structure) if Path(structure).is_file() else monolayer(structure)
    check_2d(atoms)
    return atoms


def defect_cell(primitive: Atoms, settings: PhononsSettings) -> Atoms | None:
    """The defect supercell of the settings (``defect_structure`` or ``defect``), else None."""
    from mlff2d.structures import make_defect, read_structure, supercell

    if settings.defect_structure is not None:
        return read_structure(settings.defect_structure)
    if settings.defect is None:
        return None
    return make_defect(supercell(primitive, *settings.defect_supercell), settings.defect)


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
