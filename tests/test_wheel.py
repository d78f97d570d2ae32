"""The wheel runs outside the checkout: built from this tree, installed into a fresh virtual
environment, it runs a synthetic run and a report from an empty directory with the `recunlearn`
command, reading its configs and table specs from the installed package."""

import json
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from .helpers import ROOT

STEP_TIMEOUT = 600  # one build, install or run on a busy 2-core machine


@pytest.mark.slow
@pytest.mark.timeout(5 * STEP_TIMEOUT + 120)
def test_the_wheel_runs_a_run_and_a_report_outside_the_checkout(tmp_path):
    def call(*cmd, cwd=tmp_path, env=None):
        out = subprocess.run(
            [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=STEP_TIMEOUT, env=env
        )
        assert out.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        return out

    wheels = tmp_path / "wheels"
    call(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, ROOT, cwd=ROOT)
    wheel = next(wheels.glob("recunlearn-*.whl"))
    venv = tmp_path / "venv"
    call(sys.executable, "-m", "venv", venv)
    py = venv / "bin" / "python"
    call(py, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel)
    # the dependencies (torch, hydra, ...) come from this environment's site-packages, added after
    # the new environment's own, so the package itself is the installed wheel's
    site = Path(call(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    where = call(
        py,
        "-c",
        textwrap.dedent("""
        import benchmarks, unlearn
        print(benchmarks.__file__); print(unlearn.__file__)"""),
        cwd=empty,
        env=env,
    ).stdout.split()
    assert all(p.startswith(str(site)) for p in where), where
    call(venv / "bin" / "recunlearn", "--help", cwd=empty, env=env)
    call(
        venv / "bin" / "recunlearn",
        "run",
        "method=sisa",
        "dataset=synthetic",
        "submodel.epochs=3",
        "partitioner.n_shards=3",
        "runtime.threads=1",
        "runtime.progress=false",
        "results_dir=out",
        cwd=empty,
        env=env,
    )
    rec = json.loads(next((empty / "out" / "runs").glob("*/result.json")).read_text())
    assert rec["status"] == "ok" and rec["method"] == "sisa" and rec["speedup.basis"] == "same_process"
    call(venv / "bin" / "recunlearn", "report", "results_dir=out", cwd=empty, env=env)
    assert (empty / "out" / "tables" / "efficiency.md").is_file()
    assert "speedup" in (empty / "out" / "tables" / "efficiency.md").read_text()
