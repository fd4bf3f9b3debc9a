"""User-facing exceptions.

Every error a user can cause or meet is one of these. The CLI catches them once and prints
a single line plus a hint; exit code 2 for bad input (:class:`InputError` and subclasses),
1 for a failed computation (:class:`CalculationFailed` and subclasses).
"""

from __future__ import annotations


class Mlff2dError(Exception):
    """Base class of all mlff2d errors.

    Parameters
    ----------
    message
        What went wrong, naming the offending value, in one line.
    hint
        How to fix it, in one line (optional).
    """

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class InputError(Mlff2dError, ValueError):
    """Bad input from the user: an option, a file, a config key (exit code 2)."""

    exit_code = 2


class ConfigError(InputError):
    """A configuration file is unreadable or has unknown or invalid keys."""


class StructureError(InputError):
    """A structure cannot be built or read (unknown element, not a 2D cell, bad defect)."""


class ModelError(InputError):
    """A model file is missing, not a MACE model, or does not match the data."""


class CalculationFailed(Mlff2dError, RuntimeError):
    """A computation ran but failed (exit code 1)."""


class SCFError(CalculationFailed):
    """A DFT self-consistent field cycle did not converge."""
