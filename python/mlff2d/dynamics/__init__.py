"""Phonons from MD with dynasor: vibrational DOS and current correlations of LAMMPS runs."""

from __future__ import annotations

from mlff2d.dynamics.results import (
    DispersionResult,
    DispersionStageResult,
    HarmonicDOS,
    VDOSResult,
    VDOSStageResult,
)
from mlff2d.dynamics.trajectory import (
    TRAJECTORY_FORMATS,
    MDTrajectory,
    inplane_distances,
    load_trajectory,
    radial_shells,
)
from mlff2d.dynamics.workflow import DispersionSettings, DispersionWorkflow, VDOSSettings, VDOSWorkflow

__all__ = [
    "TRAJECTORY_FORMATS",
    "DispersionResult",
    "DispersionSettings",
    "DispersionStageResult",
    "DispersionWorkflow",
    "HarmonicDOS",
    "MDTrajectory",
    "VDOSResult",
    "VDOSSettings",
    "VDOSStageResult",
    "VDOSWorkflow",
    "inplane_distances",
    "load_trajectory",
    "radial_shells",
]
