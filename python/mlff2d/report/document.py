"""A small report document model rendered to Markdown and to self-contained HTML.

The HTML embeds every figure as a base64 data URI and all CSS inline, so the file opens in
any browser with no server and can be mailed or archived alone. The Markdown references the
figures by relative path (for GitHub and editors).
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlff2d.runinfo import atomic_write_text


@dataclass
class Table:
    """A table: column names and rows of cells (numbers are formatted with ``fmt``)."""

    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""
    fmt: str = "{:.4g}"

    def cell(self, v: Any) -> str:
        """Format one cell."""
        if isinstance(v, float):
            return self.fmt.format(v)
        return "" if v is None else str(v)


@dataclass
class Figure:
    """A PNG figure with a caption."""

    path: Path
    caption: str = ""


@dataclass
class Section:
    """A report section: paragraphs, tables, figures and code blocks, in that order."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    code: list[str] = field(default_factory=list)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1.2em;color:#1d2330;line-height:1.5}
h1{border-bottom:3px solid #2c5d9e;padding-bottom:.3em}h2{color:#2c5d9e;margin-top:2em;
border-bottom:1px solid #d8dee9}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}th,td{border:1px solid #cfd6e2;
padding:.3em .7em;text-align:right}th{background:#eef2f8}td:first-child,th:first-child{text-align:left}
caption{caption-side:top;text-align:left;font-style:italic;color:#4a5568;padding-bottom:.3em}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #e2e8f0}
figcaption{color:#4a5568;font-size:.9em}pre{background:#f5f7fa;padding:.8em;overflow-x:auto;
font-size:.85em;border-radius:4px}nav a{margin-right:1em}
"""


@dataclass
class Report:
    """A report: a title, an intro line and sections."""

    title: str
    sections: list[Section] = field(default_factory=list)
    subtitle: str = ""

    # -- Markdown ----------------------------------------------------------------------------
    def to_markdown(self, relative_to: Path) -> str:
        """Render as Markdown; figure paths relative to ``relative_to``."""
        out = [f"# {self.title}", ""]
        if self.subtitle:
            out += [self.subtitle, ""]
        for s in self.sections:
            out += [f"## {s.title}", ""]
            for p in s.paragraphs:
                out += [p, ""]
            for t in s.tables:
                if t.caption:
                    out += [f"*{t.caption}*", ""]
                out.append("| " + " | ".join(t.columns) + " |")
                out.append("|" + "|".join("---" for _ in t.columns) + "|")
                out += ["| " + " | ".join(t.cell(v) for v in row) + " |" for row in t.rows]
                out.append("")
            for f in s.figures:
                rel = os.path.relpath(f.path, relative_to)
                out += [f"![{f.caption}]({rel})", "", f"*{f.caption}*", ""]
            for c in s.code:
                out += ["```", c, "```", ""]
        return "\n".join(out)

    # -- HTML --------------------------------------------------------------------------------
    def to_html(self) -> str:
        """Render as one self-contained HTML page (figures embedded as base64 PNG)."""
        e = html.escape
        body = [f"<h1>{e(self.title)}</h1>"]
        if self.subtitle:
            body.append(f"<p>{e(self.subtitle)}</p>")
        nav = " ".join(f'<a href="#s{i}">{e(s.title)}</a>' for i, s in enumerate(self.sections))
        body.append(f"<nav>{nav}</nav>")
        for i, s in enumerate(self.sections):
            body.append(f'<h2 id="s{i}">{e(s.title)}</h2>')
            body += [f"<p>{e(p)}</p>" for p in s.paragraphs]
            for t in s.tables:
                head = "".join(f"<th>{e(c)}</th>" for c in t.columns)
                rows = "".join(
                    "<tr>" + "".join(f"<td>{e(t.cell(v))}</td>" for v in r) + "</tr>" for r in t.rows
                )
                cap = f"<caption>{e(t.caption)}</caption>" if t.caption else ""
                body.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            for f in s.figures:
                data = base64.b64encode(Path(f.path).read_bytes()).decode()
                body.append(
                    f'<figure><img alt="{e(f.caption)}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{e(f.caption)}</figcaption></figure>"
                )
            body += [f"<pre>{e(c)}</pre>" for c in s.code]
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{e(self.title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(body)
            + "</body></html>\n"
        )

    def write(self, outdir: str | Path, stem: str = "report") -> dict[str, Path]:
        """Write ``report.md`` and ``report.html`` into ``outdir``; return their paths."""
        outdir = Path(outdir)
        md, page = outdir / f"{stem}.md", outdir / f"{stem}.html"
        atomic_write_text(md, self.to_markdown(outdir))
        atomic_write_text(page, self.to_html())
        return {"markdown": md, "html": page}


def screenshot(
    page: str | Path, png: str | Path, width: int = 1200, height: int = 3000, browser: str = "chromium"
) -> Path:
    """Render ``page`` in headless Chromium and save a PNG screenshot.

    Raises
    ------
    mlff2d.errors.CalculationFailed
        If Chromium is missing or fails.
    """
    import shutil
    import subprocess
    import tempfile

    from mlff2d.errors import CalculationFailed

    exe = shutil.which(browser) or shutil.which("chromium-browser")
    if exe is None:
        raise CalculationFailed(
            "chromium is not installed", "apt-get install chromium (make screenshot does)"
        )
    png = Path(png).resolve()
    with tempfile.TemporaryDirectory() as prof:
        cmd = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={prof}",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            Path(page).resolve().as_uri(),
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if res.returncode != 0 or not png.is_file():
        raise CalculationFailed(f"chromium screenshot failed: {res.stderr.strip().splitlines()[-1:]}")
    return png
