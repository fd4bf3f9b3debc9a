"""Phonons from MD with dynasor: vibrational DOS and current correlations of LAMMPS runs."""

from __future__ import annotations

from mlff2d.dynamics.results import DispersionResult, HarmonicDOS, VDOSResult
from mlff2d.dynamics.trajectory import (
    TRAJECTORY_FORMATS,
    MDTrajectory,
    inplane_distances,
    load_trajectory,
    radial_shells,
)

__all__ = [
    "TRAJECTORY_FORMATS",
    "DispersionResult",
    "HarmonicDOS",
    "MDTrajectory",
    "VDOSResult",
    "inplane_distances",
    "load_trajectory",
    "radial_shells",
]
