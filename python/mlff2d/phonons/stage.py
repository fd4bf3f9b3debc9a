"""The phonons stage: settings, typed results and workflows of ``mlff2d phonons`` and ``phonons compare``.

This module imports no heavy library (Phonopy, torch, matplotlib) at module level: the commands
build their options from :class:`PhononsSettings` and :class:`CompareSettings`, and the
computations (:mod:`.compute`, :mod:`.engines`, :mod:`.compare`) are imported by ``_run``.

Example
-------
>>> from mlff2d.phonons import PhononsSettings, PhononsWorkflow  # doctest: +SKIP
>>> settings = PhononsSettings(calculator="sw", supercell=(3, 3))  # doctest: +SKIP
>>> res = PhononsWorkflow(settings, "runs/ph").run()  # doctest: +SKIP
>>> res.pristine.phonopy_params  # a Path  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from mlff2d.errors import InputError
from mlff2d.runinfo import RunRecord
from mlff2d.settings import Settings, setting
from mlff2d.workflow import StageResult, Workflow

#: q-points per segment of Γ–M–K–Γ, in ``phonons`` and ``phonons compare``.
NPOINTS = 51


@dataclass
class PhononsSettings(Settings):
    """Settings of ``mlff2d phonons``: force field, supercells, displacements, spectra, figures.

    The pristine and defect computations (:mod:`.compute`) read the same settings.
    """

    structure: str = setting("WSe2", "A formula like WSe2 or a primitive-cell file.", argument=True)
    calculator: Literal["sw", "mace"] | None = setting(
        None, "Force field: the SW teacher or a MACE model (default: mace with --model)."
    )
    model: Path | None = setting(None, "MACE *.model file.")
    engine: Literal["auto", "ase", "lammps", "mace-batched", "mace-hessian", "symmetrix"] = setting(
        "auto", "Force engine (auto: symmetrix if prepared, else mace-batched for MACE; ase for SW)."
    )
    device: str = setting("auto", "cpu, cuda or auto.")
    batch_size: int | None = setting(None, "MACE structures per pass (auto).", ge=1)
    supercell: tuple[int, int] = setting((6, 6), "Pristine phonopy supercell N M.", ge=1)
    defect: str | None = setting(None, "Also run a defect supercell: V_Se, V_W, Mo_W, ...")
    defect_structure: Path | None = setting(
        None, "Defect supercell file (extxyz with defect_center) instead of --defect."
    )
    defect_supercell: tuple[int, int] = setting(
        (12, 12), "Size of the defect supercell built for --defect.", ge=1
    )
    displacement: float = setting(0.01, "Finite displacement.", unit="Å", gt=0)
    fmax: float = setting(1e-4, "Pristine relaxation tolerance.", unit="eV/Å", gt=0)
    defect_fmax: float = setting(2e-3, "Defect relaxation tolerance.", unit="eV/Å", gt=0)
    relax: bool = setting(True, "Relax the structures first.")
    symmetrize: bool = setting(True, "Symmetrise force constants (translational invariance).")
    npoints: int = setting(NPOINTS, "q-points per segment.", ge=2)
    mesh: int = setting(30, "Pristine DOS mesh N×N.", ge=1)
    defect_mesh: int = setting(2, "Defect DOS mesh.", ge=1)
    sigma: float = setting(0.05, "DOS smearing.", unit="THz", gt=0)
    pitch: float = setting(0.01, "DOS frequency step.", unit="THz", gt=0)
    unfold_npoints: int = setting(31, "q-points per segment for unfolding.", ge=2)
    unfold_sigma: float = setting(0.1, "Unfolded map smearing.", unit="THz", gt=0)
    shell_width: float = setting(2.0, "Radial shell width for the local PDOS.", unit="Å", gt=0)
    localisation_radius: float = setting(4.0, "Radius around the defect for the mode weight.", unit="Å", gt=0)
    n_localised: int = setting(20, "Most localised defect modes listed in localised_modes.csv.", ge=0)
    figures: bool = setting(True, "Draw figures.")


@dataclass(kw_only=True)
class CellPhononsResult(StageResult):
    """What the phonons of one cell (pristine or defect) give, in its own folder.

    Attributes
    ----------
    relaxed
        The relaxed cell (extxyz).
    phonopy_params, force_constants
        Phonopy's ``phonopy_params.yaml`` and ``force_constants.hdf5`` (eV/Å²).
    dos, pdos_dat
        DOS of the cell (:class:`~mlff2d.phonons.results.DOS`, states/THz) and Phonopy's
        projected-DOS table.
    gamma, gamma_table
        Γ modes (:class:`~mlff2d.phonons.results.Modes`) and as CSV.
    min_frequency_thz
        Lowest frequency (THz): of the bands (pristine) or at Γ (defect).
    displacements, displacements_computed
        Displaced supercells in total and evaluated in this run (the rest were cached).
    figures
        Figure files by name (``phonon_bands_pdos_png``, ``compare_NxM_band_pdos_png`` ...).
    """

    relaxed: Path
    phonopy_params: Path
    force_constants: Path
    dos: Path
    pdos_dat: Path
    gamma: Path
    gamma_table: Path
    min_frequency_thz: float
    displacements: int
    displacements_computed: int
    figures: dict[str, Path] = field(default_factory=dict)


@dataclass(kw_only=True)
class PristinePhononsResult(CellPhononsResult):
    """Phonons of the pristine primitive cell (folder ``pristine/``); see :class:`CellPhononsResult`.

    Attributes
    ----------
    band_yaml, bands
        Bands on Γ–M–K–Γ: Phonopy's ``band.yaml`` and a
        :class:`~mlff2d.phonons.results.BandStructure` (THz).
    total_dos_dat
        Phonopy's total-DOS table (the DOS has partials per element and direction).
    a_angstrom
        Relaxed lattice constant (Å).
    min_frequency_near_gamma_thz, max_frequency_thz
        Lowest band frequency within 0.15 reduced units of Γ and highest band frequency (THz).
    gamma_modes
        Γ modes with irreps: ``{"THz", "cm-1", "irrep"}`` each.
    """

    band_yaml: Path
    bands: Path
    total_dos_dat: Path
    a_angstrom: float
    min_frequency_near_gamma_thz: float
    max_frequency_thz: float
    gamma_modes: list[dict[str, Any]]


@dataclass(kw_only=True)
class DefectPhononsResult(CellPhononsResult):
    """Phonons of the defect supercell against the pristine crystal (folder ``defect/``).

    See :class:`CellPhononsResult`; the Γ modes carry IPR and defect weight.

    Attributes
    ----------
    localised_modes
        The most localised Γ modes (CSV).
    pristine_dos
        The pristine DOS on the same grid.
    shells, pristine_shells
        Local PDOS per radial shell around the defect centre (``local_pdos_defect.npz``) and
        of the ideal supercell (``local_pdos_pristine.npz``).
    unfolded
        Unfolded spectral map A(q, ω) on Γ–M–K–Γ (:class:`~mlff2d.phonons.results.SpectralMap`).
    n_atoms, repeat
        Atoms of the defect cell; its N×M repetition of the primitive cell.
    most_localised_modes
        The five modes of largest defect weight: ``{"THz", "ipr", "defect_weight"}`` each.
    """

    localised_modes: Path
    pristine_dos: Path
    shells: Path
    pristine_shells: Path
    unfolded: Path
    n_atoms: int
    repeat: tuple[int, int]
    most_localised_modes: list[dict[str, Any]]


@dataclass
class PhononsResult(StageResult):
    """Result of ``mlff2d phonons``.

    Attributes
    ----------
    pristine
        The pristine primitive cell.
    calculator
        The force field used (``"sw"`` or ``"mace"``).
    engine
        The force engine as it ran (name, device, tuned batch size, route counts).
    defect
        The defect supercell, when one was asked for.
    """

    pristine: PristinePhononsResult
    calculator: str
    engine: dict[str, Any]
    defect: DefectPhononsResult | None = None


class PhononsWorkflow(Workflow[PhononsSettings, PhononsResult]):
    """``mlff2d phonons``: pristine phonons of a monolayer and, optionally, of a defect supercell.

    Writes ``pristine/`` (and ``defect/``) into the output folder. Displacement forces are
    cached per displacement and relaxed structures kept, so an interrupted run resumes;
    ``force=True`` discards them and computes everything again.
    """

    command = "phonons"
    Settings = PhononsSettings
    Result = PhononsResult
    #: the primitive and defect cells (ASE Atoms; the defect cell or ``None``), built by :meth:`check`.
    _cells: tuple[Any, Any] | None = None

    @property
    def calculator(self) -> str:
        """The force field: ``settings.calculator``, else ``"mace"`` with a model, else ``"sw"``."""
        s = self.settings
        return s.calculator or ("mace" if s.model else "sw")

    def inputs(self) -> dict[str, Path]:
        """The model, the defect structure and the structure when it is a file."""
        out = super().inputs()
        if Path(self.settings.structure).is_file():
            out["structure"] = Path(self.settings.structure)
        return out

    def check(self) -> None:
        """Check the force field, the engine, the cells and the defect options against each other.

        Builds the primitive and defect cells (kept for the run) and checks them with
        :func:`mlff2d.validate.check_structure` against the elements of the force field.

        Raises
        ------
        InputError
            For contradicting options, a missing file, a cell that breaks a rule (not finite, not
            2D, atoms on top of each other) or elements the force field does not know.
        """
        from mlff2d.phonons.compute import defect_cell, primitive_cell
        from mlff2d.validate import check_file, check_structure

        s = self.settings
        if self.calculator == "mace" and s.model is None:
            raise InputError("--calculator mace needs --model", "pass --model path/to/model.model")
        if self.calculator == "sw" and s.engine not in ("auto", "ase", "lammps"):
            raise InputError(f"engine {s.engine!r} needs a MACE model", "use --engine ase")
        if self.calculator == "mace" and s.engine == "lammps":
            raise InputError("the lammps engine runs the SW teacher only", "use --calculator sw")
        if s.defect and s.defect_structure:
            raise InputError("give --defect or --defect-structure, not both")
        if s.defect_structure is not None:
            check_file(s.defect_structure, "--defect-structure")
        known, known_by = self._known_elements()
        prim = primitive_cell(s.structure)
        check_structure(prim, s.structure, known=known, known_by=known_by)
        cell = defect_cell(prim, s)
        if cell is not None:
            where = str(s.defect_structure or f"the {s.defect} supercell")
            check_structure(cell, where, known=known, known_by=known_by)
            if "defect_center" not in cell.info:
                raise InputError(
                    f"--defect-structure: {where} has no defect_center",
                    "build it with `mlff2d structure --defect ...` (extxyz keeps defect_center, Å)",
                )
        self._cells = (prim, cell)

    def _known_elements(self) -> tuple[tuple[str, ...], str]:
        """Elements of the force field (loading the MACE model checks that it is one) and its name."""
        if self.calculator == "mace":
            from mlff2d.validate import mace_model_elements

            return tuple(mace_model_elements(self.settings.model)), f"model {self.settings.model}"
        from mlff2d.reference.sw import SW_ELEMENTS

        return SW_ELEMENTS, "the SW teacher"

    def _run(self, record: RunRecord) -> PhononsResult:
        import shutil

        from mlff2d.phonons.compute import DefectPhonons, PristinePhonons
        from mlff2d.phonons.engines import calculator_and_engine

        s = self.settings
        if self._cells is None:
            self.check()
        prim, cell = self._cells
        if self.force:  # discard cached forces and relaxed structures
            for sub in ("pristine", "defect"):
                shutil.rmtree(self.outdir / sub, ignore_errors=True)
        calc, engine = calculator_and_engine(self.calculator, s.model, s.engine, s.device, s.batch_size)
        pristine = PristinePhonons(prim, calc, engine, self.outdir / "pristine", s, self.progress, record)
        with record.timer("pristine"):
            pristine_result = pristine.run()
        defect_result = None
        if cell is not None:
            defect = DefectPhonons(
                cell, calc, engine, self.outdir / "defect", pristine, s, self.progress, record
            )
            with record.timer("defect"):
                defect_result = defect.run()
        return PhononsResult(
            self.outdir,
            pristine=pristine_result,
            calculator=self.calculator,
            engine=engine.describe(),  # with the tuned batch size
            defect=defect_result,
        )


# -- phonons compare -----------------------------------------------------------------------------


@dataclass
class CompareSettings(Settings):
    """Settings of ``mlff2d phonons compare A B``."""

    a: Path = setting(help="Reference: a phonopy_params.yaml or an `mlff2d phonons` folder.", argument=True)
    b: Path = setting(help="Compared: a phonopy_params.yaml or an `mlff2d phonons` folder.", argument=True)
    label_a: str | None = setting(None, "Legend label of A (default: its path).")
    label_b: str | None = setting(None, "Legend label of B (default: its path).")
    npoints: int = setting(NPOINTS, "q-points per segment.", ge=2)


@dataclass
class CompareResult(StageResult):
    """Frequency differences of B relative to A on Γ–M–K–Γ (THz).

    Attributes
    ----------
    rms_thz, max_thz
        RMS and maximum absolute difference over all q-points and bands of the path (THz).
    gamma
        One dict per Γ mode: ``irrep`` (of A), ``a_THz``, ``b_THz``, ``diff_THz`` and
        ``rel_diff`` = (b - a) / a for optical modes (None for acoustic ones).
    per_band_rms_thz
        RMS difference of each band (bands sorted by frequency at each q), THz.
    max_optical_rel
        Largest |relative difference| of the optical Γ modes.
    figures
        The overlay figure (``compare_bands_png``, ``compare_bands_pdf``).
    """

    rms_thz: float
    max_thz: float
    gamma: list[dict[str, Any]]
    per_band_rms_thz: list[float]
    max_optical_rel: float | None
    figures: dict[str, Path] = field(default_factory=dict)


class CompareWorkflow(Workflow[CompareSettings, CompareResult]):
    """``mlff2d phonons compare A B``: bands of two phonon results on one path and their differences."""

    command = "phonons compare"
    Settings = CompareSettings
    Result = CompareResult

    #: the two Phonopy objects, loaded by :meth:`check`.
    _phonons: tuple[Any, Any] | None = None

    def check(self) -> None:
        """A and B must be phonon results that Phonopy reads (loaded here, kept for the run).

        Raises
        ------
        InputError
            Naming A or B: not found, not a finished ``mlff2d phonons`` folder, or a file that
            Phonopy cannot read.
        """
        self._phonons = (_load_phonons("A", self.settings.a), _load_phonons("B", self.settings.b))

    def _run(self, record: RunRecord) -> CompareResult:
        from mlff2d.phonons.compare import compare_phonons
        from mlff2d.phonons.plots import plot_overlay

        s = self.settings
        if self._phonons is None:
            self.check()
        a, b = cast(tuple[Any, Any], self._phonons)
        with record.timer("compare"):
            comp, ba, bb = compare_phonons(a, b, s.npoints)
        labels = (s.label_a or str(s.a), s.label_b or str(s.b))
        files = plot_overlay(ba, bb, labels, self.outdir / "compare_bands")
        return CompareResult(
            self.outdir,
            figures={f"compare_bands_{k}": v for k, v in files.items()},
            **dataclasses.asdict(comp),
        )


def _load_phonons(name: str, path: Path) -> Any:
    """The Phonopy object of ``path`` (argument ``name``); any reading error is one line naming it."""
    from mlff2d.phonons.compare import load_phonopy

    hint = "give a phonopy_params.yaml or an `mlff2d phonons` output folder"
    if not path.exists():
        raise InputError(f"{name}: {path} not found", hint)
    try:
        return load_phonopy(path)
    except InputError as exc:
        raise InputError(f"{name}: {exc.message}", exc.hint) from None
    except Exception as exc:  # noqa: BLE001 - Phonopy's parsers raise anything
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise InputError(
            f"{name}: Phonopy cannot read {path} ({type(exc).__name__}: {first[:100]})", hint
        ) from None
