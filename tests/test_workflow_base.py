"""The workflow base and settings: value checks, generated options, reuse rule, and the README example."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import click
import pytest
from click.testing import CliRunner

from mlff2d.errors import ConfigError, InputError
from mlff2d.settings import Settings, cli_options, setting, settings_from_cli
from mlff2d.workflow import StageResult, Workflow


@dataclass
class ToySettings(Settings):
    material: str = setting("WSe2", "Formula.", argument=True)
    temperature: float = setting(300.0, "Temperature.", unit="K", short="-T", ge=0)
    supercell: tuple[int, int] = setting((12, 12), "Repetitions N M.", ge=1)
    model: Path | None = setting(None, "Model file.")
    mode: Literal["fast", "exact"] = setting("fast", "Route.")
    relax: bool = setting(True, "Relax first.")
    dry_run: bool = setting(False, "Only plan.")


@dataclass
class ToyPart(StageResult):
    table: Path
    rows: int


@dataclass
class ToyResult(StageResult):
    main: Path
    value: float
    part: ToyPart | None = None


class ToyWorkflow(Workflow[ToySettings, ToyResult]):
    command = "toy"
    Settings = ToySettings
    Result = ToyResult
    calls = 0

    def _run(self, record) -> ToyResult:
        type(self).calls += 1
        (self.outdir / "main.txt").write_text(f"{self.settings.temperature}")
        (self.outdir / "part").mkdir(exist_ok=True)
        (self.outdir / "part" / "table.csv").write_text("a,b\n")
        part = ToyPart(self.outdir / "part", self.outdir / "part" / "table.csv", 1)
        return ToyResult(self.outdir, self.outdir / "main.txt", self.settings.temperature / 2, part)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"temperature": "300K"}, "temperature: '300K' is not a number"),
        ({"temperature": -5}, "temperature: -5 K is below the minimum 0 K"),
        ({"temperature": float("nan")}, "temperature: nan is not a finite number"),
        ({"supercell": (0, 2)}, r"supercell\[0\]: 0 is below the minimum 1"),
        ({"supercell": (2, 2, 2)}, "supercell: .* is not a list of 2 values"),
        ({"mode": "slow"}, "mode: 'slow' is not one of 'fast', 'exact'"),
        ({"relax": "yes"}, "relax: 'yes' is not true or false"),
    ],
)
def test_values_are_checked_by_name(values, message):
    with pytest.raises(ConfigError, match=message):
        ToySettings(**values)
    with pytest.raises(ConfigError, match=f"recipe.yaml: toy: {message}"):
        ToySettings.from_mapping(values, "recipe.yaml: toy")


def test_mapping_rejects_unknown_keys_and_coerces():
    with pytest.raises(ConfigError, match="unknown key 'temprature'"):
        ToySettings.from_mapping({"temprature": 3}, "r.yaml: toy")
    s = ToySettings.from_mapping({"temperature": 10, "supercell": [3, 4], "model": "m.pt"})
    assert s.temperature == 10.0 and isinstance(s.temperature, float)
    assert s.supercell == (3, 4) and s.model == Path("m.pt")


def test_options_are_generated_from_the_dataclass():
    seen = {}

    @click.command()
    @cli_options(ToySettings)
    def cmd(**kw):
        seen["s"] = settings_from_cli(ToySettings, kw)

    runner = CliRunner()
    assert runner.invoke(cmd, []).exit_code == 0
    assert seen["s"] == ToySettings()
    out = runner.invoke(cmd, ["MoS2", "-T", "10", "--supercell", "3", "4", "--no-relax", "--dry-run"])
    assert out.exit_code == 0, out.output
    assert seen["s"] == ToySettings("MoS2", 10.0, (3, 4), relax=False, dry_run=True)
    # the argv written for the report reproduces the settings
    argv = seen["s"].to_argv()
    assert runner.invoke(cmd, argv).exit_code == 0 and seen["s"] == ToySettings.from_mapping(
        {"material": "MoS2", "temperature": 10, "supercell": [3, 4], "relax": False, "dry_run": True}
    )
    help_text = runner.invoke(cmd, ["--help"]).output
    assert "Temperature. (K)" in help_text and "[default: 300.0]" in help_text
    bad = runner.invoke(cmd, ["-T", "-5"])
    assert bad.exit_code != 0 and "--temperature: -5 K is below the minimum 0 K" in str(bad.exception)


def test_run_reuses_a_finished_result_and_loads_it_typed(tmp_path):
    ToyWorkflow.calls = 0
    first = ToyWorkflow(ToySettings(temperature=10), tmp_path / "out")
    res = first.run()
    assert first.status == "ran" and ToyWorkflow.calls == 1
    assert res.output_files() == {
        "main": tmp_path / "out" / "main.txt",
        "part.table": tmp_path / "out/part/table.csv",
    }
    assert res.summary() == {"value": 5.0, "part": {"rows": 1}}
    again = ToyWorkflow(ToySettings(temperature=10), tmp_path / "out")
    assert again.run() == res and again.status == "reused" and ToyWorkflow.calls == 1
    # the folder can move: paths are stored relative to it
    (tmp_path / "out").rename(tmp_path / "moved")
    loaded = ToyWorkflow.load(tmp_path / "moved")
    assert isinstance(loaded, ToyResult) and loaded.part.table == tmp_path / "moved/part/table.csv"
    # other settings, a lost output or force: computed again
    assert ToyWorkflow(ToySettings(temperature=11), tmp_path / "moved").run().value == 5.5
    (tmp_path / "moved" / "part" / "table.csv").unlink()
    ToyWorkflow(ToySettings(temperature=11), tmp_path / "moved").run()
    ToyWorkflow(ToySettings(temperature=11), tmp_path / "moved", force=True).run()
    assert ToyWorkflow.calls == 4
    assert ToyWorkflow(ToySettings(), tmp_path / "x").command_line() == f"mlff2d toy WSe2 -o {tmp_path / 'x'}"


def test_load_names_the_folder_and_the_command(tmp_path):
    with pytest.raises(InputError, match="holds no finished 'toy' result"):
        ToyWorkflow.load(tmp_path)


def test_readme_python_example(tmp_path, monkeypatch):
    """The README's "Workflows from Python" example, run as written (SW teacher, seconds)."""
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"<!-- python-example -->\n```python\n(.*?)```", readme, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the documented example
    res = namespace["res"]
    assert res.defect is not None and res.defect.shells.is_file()
    assert res.pristine.phonopy_params.is_file() and len(res.pristine.gamma_modes) == 9
