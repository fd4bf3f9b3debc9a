"""Harmonic phonons with Phonopy: force engines, pristine and defect workflows, analysis.

:mod:`.engine` (force engines and the per-displacement cache), :mod:`.core` (Phonopy
plumbing), :mod:`.workflow` (``PristinePhonons``, ``DefectPhonons``), :mod:`.unfold` (band
unfolding), :mod:`.local` (IPR, radial local PDOS), :mod:`.compare`, :mod:`.plots`,
:mod:`.results` (typed results, npz + json) and :mod:`.commands` (``mlff2d phonons``).
"""
