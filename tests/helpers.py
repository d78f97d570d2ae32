"""Running the CLI in a subprocess, as a user does."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST = ["dataset=synthetic", "submodel.epochs=6", "submodel.dim=16", "submodel.lr=0.01",
        "runtime.progress=false", "runtime.threads=1"]


def cli(module: str, *args: str, results: Path | None = None, timeout: int = 600, env=None):
    extra = [f"results_dir={results}"] if results is not None and module == "benchmarks.run" else []
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args, *extra], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=full_env)


def records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(Path(results).glob("runs/*/result.json"))]
