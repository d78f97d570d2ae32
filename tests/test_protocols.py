"""docs/protocols.md and the experiment configs agree with conf/: every preset an experiment names
exists, every switch the protocols page lists exists, and every table spec carries the one-line
`protocol:` caption the reporter prints under its table."""

import json
import re
from pathlib import Path

import pytest
import yaml

import unlearn  # noqa: F401  (fills the registries)
from unlearn.registry import PROBES

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
DOC = ROOT / "docs" / "protocols.md"
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir())


def experiments():
    return sorted((CONF / "experiment").glob("*.yaml"))


def named_presets(cfg: dict) -> list[tuple[str, str]]:
    """(group, option) for every option an experiment config chooses: its defaults list
    (`override /group: option`) and its sweep parameters over config groups."""
    out = []
    for entry in cfg.get("defaults") or []:
        if isinstance(entry, dict):
            for key, value in entry.items():
                group = key.split()[-1].lstrip("/").split("@")[0]
                if group in GROUPS and value is not None:
                    out.append((group, str(value)))
    params = ((cfg.get("hydra") or {}).get("sweeper") or {}).get("params") or {}
    for key, value in params.items():
        if key in GROUPS:
            out += [(key, v.strip()) for v in str(value).split(",")]
    return out


@pytest.mark.parametrize("path", experiments(), ids=lambda p: p.stem)
def test_experiment_names_only_presets_that_exist(path):
    cfg = yaml.safe_load(path.read_text()) or {}
    missing = [f"{g}={o}" for g, o in named_presets(cfg) if not (CONF / g / f"{o}.yaml").is_file()]
    assert not missing, f"{path.name} names presets that do not exist: {missing}"


def test_a_missing_preset_is_caught():
    cfg = {
        "defaults": [{"override /submodel": "bpr_nowhere"}],
        "hydra": {"sweeper": {"params": {"method": "sisa,nope"}}},
    }
    names = named_presets(cfg)
    assert ("submodel", "bpr_nowhere") in names and ("method", "nope") in names


def doc_switches(text: str) -> list[str]:
    """The backticked `key=value` tokens of the Switch column of every table on the page."""
    out = []
    for block in re.split(r"\n(?!\|)", text):
        lines = [line for line in block.splitlines() if line.startswith("|")]
        if len(lines) < 3:
            continue
        header = [c.strip().lower() for c in lines[0].strip("|").split("|")]
        if "switch" not in header:
            continue
        col = header.index("switch")
        for line in lines[2:]:
            cells = [c.strip() for c in line.strip("|").split("|")]
            out += re.findall(r"`([^`=]+=[^`]+)`", cells[col])
    return out


def key_paths(group: str) -> set[str]:
    """Every dotted key any option file of the group sets."""
    paths = set()

    def walk(node, prefix):
        for k, v in node.items():
            paths.add(prefix + k)
            if isinstance(v, dict):
                walk(v, prefix + k + ".")

    for f in (CONF / group).glob("*.yaml"):
        walk(yaml.safe_load(f.read_text()) or {}, "")
    return paths


def switch_exists(switch: str) -> str | None:
    """None if the switch names something that exists in conf/, else why not."""
    key, value = switch.split("=", 1)
    group, _, rest = key.partition(".")
    if group not in GROUPS:
        return f"{switch}: no config group '{group}'"
    if not rest:
        return None if (CONF / group / f"{value}.yaml").is_file() else f"{switch}: no conf/{group}/{value}.yaml"
    if rest not in key_paths(group):
        return f"{switch}: no option file of '{group}' sets '{rest}'"
    if key == "eval.probes":
        unknown = [p for p in value.strip("[]").split(",") if p.strip() and p.strip() not in PROBES.names()]
        if unknown:
            return f"{switch}: unknown probes {unknown}"
    return None


def test_every_switch_on_the_protocols_page_exists():
    switches = doc_switches(DOC.read_text())
    assert len(switches) >= 20  # the page lists them; a parse that finds none must fail
    problems = [p for p in map(switch_exists, switches) if p]
    assert not problems, "docs/protocols.md lists switches that conf/ does not have:\n" + "\n".join(problems)


def test_a_missing_switch_is_caught():
    assert switch_exists("submodel=bpr_nowhere")
    assert switch_exists("aggregator.nokey=1")
    assert switch_exists("eval.probes=[no_probe]")
    assert switch_exists("submodel.plus_one=false") is None
    assert switch_exists("partitioner.embedding.name=wmf") is None


@pytest.mark.parametrize("path", sorted((ROOT / "benchmarks" / "tables").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_table_spec_has_a_protocol_caption(path):
    spec = yaml.safe_load(path.read_text())
    assert isinstance(spec.get("protocol"), str) and spec["protocol"].strip(), f"{path.name} has no protocol: line"
    assert "\n" not in spec["protocol"].strip()


def test_reporter_prints_the_protocol_under_the_table(tmp_path):
    from benchmarks.records_load import load_records
    from benchmarks.report import render_spec

    rec = {"run_id": "r0", "status": "ok", "dataset": "d", "method": "a", "seed": 0, "after.ndcg@20": 0.3}
    (tmp_path / "runs" / "r0").mkdir(parents=True)
    (tmp_path / "runs" / "r0" / "result.json").write_text(json.dumps(rec))
    df, _ = load_records(tmp_path)
    render_spec(
        "t",
        {"title": "t", "protocol": "split X, stop Y", "rows": ["method"], "columns": ["after.ndcg@20"]},
        df,
        tmp_path,
    )
    md = (tmp_path / "tables" / "t.md").read_text()
    assert md.rstrip().endswith("protocol: split X, stop Y") and md.index("| a ") < md.index("protocol:")


def test_paper_tables_index_lists_what_it_left_for_a_gpu(tmp_path):
    from benchmarks.paper_tables import CPU_PLAN, GPU_PLAN, header, index

    out = tmp_path / "results"
    index(out)  # nothing regenerated yet: the folder is created and the plan listed
    text = (out / "README.md").read_text()
    assert "(none yet)" in text and all(n in text for n, _, _ in GPU_PLAN + CPU_PLAN)
    h = header("t", ["seed=0,1"], 12.3, "tiny", out)
    assert "commit:" in h and "machine:" in h and "seeds: 0,1" in h and "wall time: 12 s" in h


def test_paper_table_header_counts_the_runs_own_wall_time(tmp_path):
    """A table rendered from runs recorded earlier says what those runs cost, not the seconds the
    render took."""
    from benchmarks.paper_tables import runs_line

    for i, (method, wall) in enumerate((("unlearn_als", 10.0), ("unlearn_als", 32.5), ("unlearn_als", 99.0))):
        run = tmp_path / "runs" / f"r{i}"
        run.mkdir(parents=True)
        dataset = "ml100k_als_paper" if i < 2 else "elsewhere"  # the third is outside the table
        (run / "result.json").write_text(
            json.dumps(
                {"status": "ok", "dataset": dataset, "method": method, "wall_s": wall, "git_commit": "abcdef1234567890"}
            )
        )
    line = runs_line("unlearn_als_paper", ["dataset=ml100k_als_paper"], tmp_path)
    assert line.startswith("- runs: 2 records, 42 s of their own wall time") and "abcdef123456" in line
    assert runs_line("unlearn_als_paper", [], tmp_path / "empty") == "- runs: none recorded"


@pytest.mark.parametrize("plan", ["cpu", "gpu"])
def test_every_planned_paper_table_composes_and_keeps_rows(plan):
    """Each entry of `make paper-tables`' plans composes with its experiment (the first value of a
    swept list), and where it narrows a config group the table filters on, the options it names are
    ones the table shows (a plan that rendered an empty table would write nothing)."""
    from benchmarks.paper_tables import CPU_PLAN, GPU_PLAN
    from benchmarks.report import load_spec, narrowing
    from tests.helpers import compose_cfg

    for name, overrides, _ in CPU_PLAN if plan == "cpu" else GPU_PLAN:
        spec = load_spec(name)
        experiment = spec.get("experiment", name)
        plain = [o.split(",")[0] for o in overrides if not o.startswith("hydra")]
        cfg = compose_cfg([f"experiment={experiment}", *plain])
        assert cfg.method.name, name
        for key, names in narrowing(spec, overrides).items():
            shown = spec["filter"][key]
            assert set(names) <= set(shown if isinstance(shown, list) else [shown]), (name, key, names)
