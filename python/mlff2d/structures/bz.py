"""The hexagonal Brillouin-zone path Γ–M–K–Γ: the one definition used by phonons and MD spectra.

Fractional coordinates of the reciprocal cell of the primitive 120° cell built by
:func:`mlff2d.structures.monolayer` (M = (1/2, 0, 0), K = (1/3, 1/3, 0)).
"""

from __future__ import annotations

#: Special points of the 2D hexagonal zone, fractional reciprocal coordinates.
HEX_POINTS: dict[str, tuple[float, float, float]] = {
    "Γ": (0.0, 0.0, 0.0),
    "M": (0.5, 0.0, 0.0),
    "K": (1 / 3, 1 / 3, 0.0),
}
#: The path as consecutive segments.
HEX_SEGMENTS: list[tuple[str, str]] = [("Γ", "M"), ("M", "K"), ("K", "Γ")]
#: The path as labelled points, Γ–M–K–Γ.
HEX_PATH: list[tuple[str, tuple[float, float, float]]] = [(a, HEX_POINTS[a]) for a, _ in HEX_SEGMENTS] + [
    ("Γ", HEX_POINTS["Γ"])
]
