"""Reports: Markdown and self-contained HTML (figures embedded) from typed sections."""

from __future__ import annotations

from mlff2d.report.document import Figure, Report, Section, Table

__all__ = ["Figure", "Report", "Section", "Table"]
