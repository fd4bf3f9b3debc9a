"""Units and conversions: the only place where conversion factors live.

Internal units are those of ASE: eV, Å, eV/Å, eV/Å³ (Voigt order xx, yy, zz, yz, xz, xy),
atomic mass units; time steps in fs; phonon frequencies in THz.
"""

from __future__ import annotations

from ase import units as _ase

#: 1 THz in cm⁻¹ (speed of light in cm/s times 1e-12).
THZ_TO_CM1: float = 33.35640951981521
#: 1 cm⁻¹ in THz.
CM1_TO_THZ: float = 1.0 / THZ_TO_CM1
#: 1 THz in meV (h × 1 THz).
THZ_TO_MEV: float = 4.135667696923859
#: eV → meV.
EV_TO_MEV: float = 1000.0
#: 1 eV/Å³ in GPa.
EV_PER_A3_TO_GPA: float = 1.0 / _ase.GPa
#: 1 fs in ASE time units.
FS: float = _ase.fs
#: Boltzmann constant in eV/K.
KB_EV: float = _ase.kB
#: 1 ps in fs.
PS_TO_FS: float = 1000.0
#: 1 fs in ps.
FS_TO_PS: float = 1e-3
#: LAMMPS ``metal`` pressure unit (bar) in eV/Å³.
BAR_TO_EV_PER_A3: float = 1e-4 * _ase.GPa
#: LAMMPS ``metal`` units: pressure × volume in bar·Å³ per eV (LAMMPS's own ``nktv2p``, which
#: differs from the CODATA value in ``BAR_TO_EV_PER_A3`` in the 7th digit). Virial (eV) from a
#: LAMMPS pressure: ``p_bar * volume / LAMMPS_METAL_NKTV2P``.
LAMMPS_METAL_NKTV2P: float = 1.6021765e6


def thz_to_cm1(f: float) -> float:
    """Convert a frequency from THz to cm⁻¹."""
    return f * THZ_TO_CM1


def cm1_to_thz(f: float) -> float:
    """Convert a wavenumber from cm⁻¹ to THz."""
    return f * CM1_TO_THZ


def nyquist_thz(dt_fs: float, stride: int) -> float:
    """Nyquist frequency (THz) of a signal sampled every ``stride`` steps of ``dt_fs`` fs."""
    return 1.0 / (2.0 * dt_fs * stride * 1e-3)


def resolution_thz(dt_fs: float, stride: int, n_frames: int) -> float:
    """Frequency resolution (THz) of ``n_frames`` samples taken every ``stride`` steps of ``dt_fs`` fs."""
    return 1.0 / (dt_fs * stride * n_frames * 1e-3)


#: Angular frequency rad/fs → frequency THz (dynasor's ω to ν).
RAD_PER_FS_TO_THZ: float = 1000.0 / (2.0 * 3.141592653589793)
#: Kinetic energy unit amu·Å²/fs² → eV (mass-weighted velocities in Å/fs).
AMU_A2_PER_FS2_TO_EV: float = 1.0 / _ase.fs**2
