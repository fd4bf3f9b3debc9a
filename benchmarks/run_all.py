"""Run every benchmark in this folder and write one table (JSON + Markdown).

Each benchmark script is run as ``python <script> --output <outdir>/<name>.json [--quick]`` in
its own process (so one crash does not stop the others) and must write a JSON object with a
``"headline"`` mapping of ratio/metric name -> value (plus whatever detail it wants); a
``"markdown"`` table in it is appended to ``bench.md`` under the benchmark's name.

    python benchmarks/run_all.py -o runs/bench [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, default=Path("runs/bench"))
    ap.add_argument("--quick", action="store_true", help="Pass --quick to every benchmark (smaller sizes).")
    ap.add_argument("--only", nargs="*", default=None, help="Names of benchmarks to run.")
    args = ap.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    scripts = sorted(p for p in HERE.glob("*.py") if p.name != Path(__file__).name)
    if args.only:
        scripts = [p for p in scripts if p.stem in args.only]
    rows, table, details = [], {}, []
    for script in scripts:
        out = args.output / f"{script.stem}.json"
        cmd = [sys.executable, str(script), "--output", str(out)] + (["--quick"] if args.quick else [])
        print(f"== {script.stem}: {' '.join(cmd)}", flush=True)
        t0 = time.perf_counter()
        res = subprocess.run(cmd)
        wall = time.perf_counter() - t0
        entry = {"script": script.name, "exit_code": res.returncode, "wall_s": round(wall, 1)}
        if res.returncode == 0 and out.is_file():
            data = json.loads(out.read_text())
            entry["headline"] = data.get("headline", {})
            if data.get("markdown"):
                details += ["", f"## {script.stem}", "", data["markdown"]]
        table[script.stem] = entry
        for k, v in entry.get("headline", {}).items():
            rows.append(
                f"| {script.stem} | {k} | {v:.4g} |"
                if isinstance(v, float)
                else f"| {script.stem} | {k} | {v} |"
            )
        if res.returncode != 0:
            rows.append(f"| {script.stem} | FAILED (exit {res.returncode}) | |")
    (args.output / "bench.json").write_text(json.dumps(table, indent=1))
    md = ["| benchmark | metric | value |", "|---|---|---|", *rows, *details]
    (args.output / "bench.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    print(f"wrote {args.output / 'bench.json'} and {args.output / 'bench.md'}")
    return 0 if all(e["exit_code"] == 0 for e in table.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
