"""Report: Markdown + self-contained HTML that renders in headless Chromium."""

from __future__ import annotations

import shutil

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mlff2d.report import Figure, Report, Section, Table  # noqa: E402
from mlff2d.report.document import screenshot  # noqa: E402


@pytest.fixture
def report(tmp_path):
    fig = tmp_path / "fig.png"
    plt.figure(figsize=(3, 2))
    plt.plot([0, 1], [0, 1])
    plt.savefig(fig, dpi=60)
    plt.close()
    return Report(
        "WSe2 <quick>",
        [
            Section(
                "Errors",
                ["force RMSE in meV/Å"],
                [Table(["set", "RMSE"], [["test", 12.3456]], "errors")],
                [Figure(fig, "parity")],
                ["mlff2d run x"],
            )
        ],
    )


def test_markdown_and_html(report, tmp_path):
    paths = report.write(tmp_path / "out")
    md = paths["markdown"].read_text()
    assert "| test | 12.35 |" in md and "](../fig.png)" in md
    page = paths["html"].read_text()
    assert "data:image/png;base64," in page
    assert "&lt;quick&gt;" in page  # escaped
    assert 'src="http' not in page and "<link" not in page  # self-contained


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (make test installs it)")
def test_renders_in_headless_chromium(report, tmp_path):
    paths = report.write(tmp_path)
    png = screenshot(paths["html"], tmp_path / "shot.png", width=800, height=600)
    from PIL import Image

    img = Image.open(png)
    assert img.size == (800, 600)
    # not a blank page: the heading and the figure put dark pixels on it
    assert img.convert("L").getextrema()[0] < 80
