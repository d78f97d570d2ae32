"""Tables a paper can use: headers from the key registry, bold only where a method is compared
with methods, one precision per column, intervals over seeds, what was left out said, and LaTeX
that compiles and fits a page."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from benchmarks.aggregate import GROUP_KEYS, aggregate
from benchmarks.records_load import load_records
from benchmarks.render_latex import MAX_VALUE_COLUMNS
from benchmarks.report import SPEC_DIR, default_tables, render_spec, report
from unlearn.metrics.keys import KEYS

SPECS = sorted(SPEC_DIR.glob("*.yaml"))
# keys the runner and the timing code declare (unlearn/methods/costs.py, unlearn/lifecycle.py,
# benchmarks/run.py); everything else a table shows is declared beside the code that computes it
TIMING_KEYS = {
    "fit_s",
    "unlearn_s",
    "unlearn_s.p50",
    "unlearn_s.p95",
    "retrain_s",
    "retrain_epochs",
    "speedup",
    "n_shards_retrained",
    "unlearn.shards_s",
    "unlearn.aggregator_s",
    "fit.partition_s",
    "fit.pretrain_s",
    "fit.shards_s",
    "fit.aggregator_s",
    "peak_rss_mb",
    "presets",
}


def shown_keys() -> set[str]:
    """Every key a table spec or a default table of the report shows, as a column or a row."""
    keys = set(GROUP_KEYS)
    for path in SPECS:
        spec = yaml.safe_load(path.read_text())
        keys |= set(spec["columns"]) | set(spec["rows"])
    for columns in default_tables([10, 20, 50], 20).values():
        keys |= set(columns)
    return keys


def test_every_shown_key_has_a_label():
    missing = sorted(k for k in shown_keys() - TIMING_KEYS if KEYS.get(k) is None)
    assert not missing, f"declare these keys beside the code that computes them: {missing}"
    for key in shown_keys() - TIMING_KEYS:
        info = KEYS.get(key)
        assert info.label and info.group in ("utility", "efficiency", "completeness", "identity", "other"), key


def test_every_timing_key_a_table_shows_has_a_label():
    """The lead declares these (unlearn/methods/costs.py, unlearn/lifecycle.py; `presets` in
    benchmarks/run.py); until then their columns keep raw names and no best is marked."""
    missing = sorted(k for k in TIMING_KEYS & shown_keys() if KEYS.get(k) is None)
    assert not missing, (
        f"timing/runner keys not declared yet (owner: unlearn/methods/costs.py, "
        f"unlearn/lifecycle.py, benchmarks/run.py): {missing}"
    )


def test_directions_are_declared_truthfully():
    assert KEYS.get("mia_auc.after").better is None  # the oracle's AUC is the target
    assert KEYS.get("retrain_rank_gap@20.deleted").better == "lower"
    assert KEYS.get("partition_drift.ari").better == "higher" and KEYS.get("partition_drift").better == "lower"
    assert KEYS.get("seed_floor@20").reference and KEYS.get("seed_floor.retrain_gap").reference
    assert KEYS.get("after.cells_auc").better == "higher" and KEYS.get("retrain.cells_auc").reference
    assert KEYS.get("forget_hit@10.popularity").reference


# -- records for the tests ---------------------------------------------------------------------


def write_records(root: Path, records: list[dict]) -> Path:
    for i, rec in enumerate(records):
        d = root / "runs" / f"r{i:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "result.json").write_text(json.dumps(rec))
    return root


def record(method: str, seed: int, **values) -> dict:
    return {
        "run_id": f"{method}-{seed}",
        "status": "ok",
        "dataset": "d",
        "method": method,
        "submodel": "bpr",
        "n_shards": 1 if method == "retrain" else 10,
        "deletion.unit": "user",
        "seed": seed,
        **values,
    }


def table_cells(md: str) -> dict[str, dict[str, str]]:
    """{row label: {header: cell}} over every Markdown table of a file (one per group of keys)."""
    out: dict[str, dict[str, str]] = {}
    lines = md.splitlines()
    for i, line in enumerate(lines):
        if not (line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|:")):
            continue
        header = [c.strip() for c in line.strip("|").split("|")]
        for row in lines[i + 2 :]:
            if not row.startswith("|"):
                break
            cells = [c.strip() for c in row.strip("|").split("|")]
            out.setdefault(cells[0], {}).update(zip(header, cells))
    return out


# -- bold --------------------------------------------------------------------------------------


def test_bold_never_lands_on_a_reference_row_or_column(tmp_path):
    """The oracle has the best NDCG and speedup, published values beat everything: neither is
    bold; the retrain-stage column is never bold; the best method row is."""
    recs = []
    for seed in (0, 1):
        recs += [
            record(
                "retrain",
                seed,
                **{"after.ndcg@20": 0.50 + seed / 100, "retrain.ndcg@20": 0.50, "unlearn_s": 0.01, "exact_gap": 0.0},
            ),
            record(
                "sisa", seed, **{"after.ndcg@20": 0.30, "retrain.ndcg@20": 0.50, "unlearn_s": 2.0, "exact_gap": 0.5}
            ),
            record(
                "receraser",
                seed,
                **{"after.ndcg@20": 0.40 + seed / 100, "retrain.ndcg@20": 0.90, "unlearn_s": 3.0, "exact_gap": 0.1},
            ),
        ]
    write_records(tmp_path, recs)
    spec = {
        "title": "t",
        "rows": ["method"],
        "columns": ["after.ndcg@20", "retrain.ndcg@20", "exact_gap"],
        "published": {"source": "paper", "rows": [{"method": "receraser", "after.ndcg@20": 0.99}]},
    }
    df, _ = load_records(tmp_path)
    render_spec("t", spec, df, tmp_path)
    md = (tmp_path / "tables" / "t.md").read_text()
    rows = table_cells(md)
    ndcg, ref_col, gap = "NDCG@20 after", "NDCG@20 retrain", "exact gap"
    assert not rows["retrain"][ndcg].startswith("**") and not rows["receraser (published)"][ndcg].startswith("**")
    assert rows["receraser"][ndcg].startswith("**") and not rows["sisa"][ndcg].startswith("**")
    assert not any(cells[ref_col].startswith("**") for cells in rows.values())
    assert rows["receraser"][gap].startswith("**") and not rows["retrain"][gap].startswith("**")
    tex = (tmp_path / "tables" / "t.tex").read_text()
    retrain_line = next(line for line in tex.splitlines() if line.startswith("retrain &"))
    assert r"\textbf" not in retrain_line
    assert "Reference rows: retrain (the retrain oracle) and published values." in md
    assert "Reference columns: retrain stage." in md and "Bold: the best method row over all rows" in md


def test_an_undeclared_key_keeps_its_raw_name_is_never_bold_and_is_named_once(tmp_path, capsys):
    recs = [
        record(m, s, **{"my_new_metric_s": v + s, "after.ndcg@20": v / 10})
        for s in (0, 1)
        for m, v in (("sisa", 1.0), ("receraser", 2.0))
    ]
    write_records(tmp_path, recs)
    spec = {"title": "t", "rows": ["method"], "columns": ["my_new_metric_s", "after.ndcg@20"]}
    df, _ = load_records(tmp_path)
    render_spec("t", spec, df, tmp_path)
    render_spec("t2", spec, df, tmp_path)
    err = capsys.readouterr().err
    assert err.count("my_new_metric_s") == 1 and "undeclared" in err
    md = (tmp_path / "tables" / "t.md").read_text()
    rows = table_cells(md)
    assert "my_new_metric_s" in rows["sisa"] and "### Other" in md
    assert not any(cells["my_new_metric_s"].startswith("**") for cells in rows.values())
    assert rows["receraser"]["NDCG@20 after"].startswith("**")


# -- numbers -----------------------------------------------------------------------------------


def decimals(text: str) -> list[int]:
    return [len(m.group(1)) for m in re.finditer(r"\d\.(\d+)", text)]


def test_one_precision_per_column(tmp_path):
    """A column's values and their ± share their decimals (3 significant digits of the largest);
    counts have none."""
    recs = []
    for s in (0, 1):
        recs += [
            record("retrain", s, **{"fit_s": 110.8 + s, "unlearn_s": 0.5, "untouched_shards": 0, "after.ndcg@20": 0.3}),
            record(
                "sisa",
                s,
                **{
                    "fit_s": 19.5944 + s * 0.01,
                    "unlearn_s": 0.0123 + s / 1000,
                    "untouched_shards": 3 + s,
                    "after.ndcg@20": 0.31234,
                },
            ),
        ]
    write_records(tmp_path, recs)
    spec = {"title": "t", "rows": ["method"], "columns": ["fit_s", "unlearn_s", "untouched_shards", "after.ndcg@20"]}
    df, _ = load_records(tmp_path)
    render_spec("t", spec, df, tmp_path)
    md = (tmp_path / "tables" / "t.md").read_text()
    rows = table_cells(md)
    for key, want in (("fit", 0), ("unlearn", 3), ("untouched", 1), ("NDCG", 3)):
        col = next(h for h in rows["sisa"] if h.startswith(key))
        texts = [cells[col] for cells in rows.values()]
        seen = {d for t in texts for d in decimals(t)}
        assert seen <= {want} and (want == 0 or seen), (key, texts)
    assert "111 ± 1" in md and "19.6" not in md and "20 ± 0" in md  # 110.8 beside 19.5944: no decimals


def test_intervals_over_seeds_in_the_csv_and_on_request(tmp_path):
    """The CSV always carries .std, .ci95.low, .ci95.high and n; `interval: ci95` shows the
    t-interval's half-width after ±, and the caption says so."""
    values = [0.30, 0.32, 0.37]
    recs = [record("sisa", s, **{"after.ndcg@20": v}) for s, v in enumerate(values)]
    recs += [record("receraser", s, **{"after.ndcg@20": 0.2}) for s in range(3)]
    write_records(tmp_path, recs)
    df, _ = load_records(tmp_path)
    agg = aggregate(df, ["method"], ["after.ndcg@20"])
    mean, sd = np.mean(values), np.std(values, ddof=1)
    half = 4.302652729911275 * sd / np.sqrt(3)  # t(0.975, 2)
    assert agg.loc["sisa", "after.ndcg@20.ci95.low"] == pytest.approx(mean - half)
    assert agg.loc["sisa", "after.ndcg@20.ci95.high"] == pytest.approx(mean + half)
    spec = {"title": "t", "rows": ["method"], "columns": ["after.ndcg@20"], "interval": "ci95"}
    render_spec("t", spec, df, tmp_path)
    csv = pd.read_csv(tmp_path / "tables" / "t.csv")
    assert {"after.ndcg@20", "after.ndcg@20.std", "after.ndcg@20.ci95.low", "after.ndcg@20.ci95.high", "n"} <= set(
        csv.columns
    )
    md = (tmp_path / "tables" / "t.md").read_text()
    assert f"{mean:.3f} ± {half:.3f}" in md and "95% t-interval" in md
    render_spec("t", {**spec, "interval": "std"}, df, tmp_path)
    md = (tmp_path / "tables" / "t.md").read_text()
    assert f"{mean:.3f} ± {sd:.3f}" in md and "Mean ± std over seeds" in md


def test_a_floored_speedup_is_marked_as_a_bound(tmp_path):
    recs = [record("sisa", s, speedup=1000.0, **{"speedup.floored": s == 0}) for s in (0, 1)]
    recs += [record("receraser", s, speedup=3.0, **{"speedup.floored": False}) for s in (0, 1)]
    write_records(tmp_path, recs)
    df, _ = load_records(tmp_path)
    render_spec("t", {"title": "t", "rows": ["method"], "columns": ["speedup"]}, df, tmp_path)
    md = (tmp_path / "tables" / "t.md").read_text()
    rows = table_cells(md)
    col = next(h for h in rows["sisa"] if h.startswith("speedup"))
    assert "≥1000" in rows["sisa"][col] and "≥" not in rows["receraser"][col] and "≥: a lower bound" in md
    assert r"$\geq$1000" in (tmp_path / "tables" / "t.tex").read_text()


# -- what was left out ---------------------------------------------------------------------------


def test_unreadable_result_files_are_counted_and_reported(tmp_path, capsys):
    write_records(tmp_path, [record("sisa", 0, **{"after.ndcg@20": 0.3}), {"run_id": "x", "status": "failed"}])
    bad = tmp_path / "runs" / "broken" / "result.json"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"status": "ok", "method": ')  # a run killed while writing
    df, left = load_records(tmp_path)
    assert len(df) == 1 and left.failed == 1 and left.unreadable == [Path("runs/broken/result.json")]
    report(str(tmp_path))
    err = capsys.readouterr().err
    assert "1 unreadable result file (runs/broken/result.json)" in err and "1 failed run" in err
    assert "1 unreadable result file" in (tmp_path / "tables" / "utility.md").read_text()
    assert "1 unreadable result file" in (tmp_path / "tables" / "utility.tex").read_text()


def test_only_unreadable_files_is_a_clear_error(tmp_path):
    bad = tmp_path / "runs" / "broken" / "result.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("not json")
    with pytest.raises(SystemExit, match="1 unreadable result file"):
        report(str(tmp_path))


def test_an_unknown_interval_is_a_clear_error(tmp_path):
    write_records(tmp_path, [record("sisa", 0, **{"after.ndcg@20": 0.3})])
    with pytest.raises(SystemExit, match="unknown interval 'sem'. Valid: std, ci95"):
        report(str(tmp_path), interval="sem")


# -- LaTeX ----------------------------------------------------------------------------------------


def spec_records(spec: dict) -> list[dict]:
    """Two seeds of up to three methods that pass the spec's filter, every column a number."""
    flt = spec.get("filter") or {}
    fixed = {k: (v[0] if isinstance(v, list) else v) for k, v in flt.items()}
    methods = flt.get("method", ["retrain", "sisa", "receraser"])
    methods = methods if isinstance(methods, list) else [methods]
    rng = np.random.default_rng(0)
    recs = []
    for m, method in enumerate(methods[:3]):
        for seed in (0, 1):
            rec = {"run_id": f"{method}-{seed}", "status": "ok", **fixed, "method": method, "seed": seed}
            for r in spec["rows"]:
                rec.setdefault(r, f"{r.split('.')[-1]}_{m % 2}")
            for c in spec["columns"]:
                rec[c] = float(rng.integers(0, 8)) if "shards" in c or "epochs" in c else float(rng.random() * 10**m)
            rec["speedup.floored"] = m == 1 and seed == 0
            recs.append(rec)
    return recs


def pdflatex(tex_files: list[Path], workdir: Path) -> str:
    doc = workdir / "doc.tex"
    doc.write_text(
        "\n".join(
            [
                r"\documentclass{article}",
                r"\usepackage[letterpaper,margin=1in]{geometry}",
                r"\usepackage{booktabs}",
                r"\begin{document}",
                *[rf"\input{{{p.as_posix()}}}\clearpage" for p in tex_files],
                r"\end{document}",
            ]
        )
    )
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log = (workdir / "doc.log").read_text(errors="replace")
    assert run.returncode == 0, log[-3000:]
    return log


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed (texlive-latex-base)")
def test_the_latex_of_every_table_spec_compiles_and_fits_the_page(tmp_path):
    written = []
    for path in SPECS:
        spec = yaml.safe_load(path.read_text())
        root = write_records(tmp_path / path.stem, spec_records(spec))
        df, _ = load_records(root)
        render_spec(path.stem, spec, df, root)
        written.append(root / "tables" / f"{path.stem}.tex")
    default = spec_records(
        {"rows": ["method"], "columns": [c for cols in default_tables([10, 20, 50], 20).values() for c in cols]}
    )
    for i, rec in enumerate(default):  # settings that vary: eight row keys, folded into one `setting` column
        rec.update(
            {
                "submodel": "bpr_receraser",
                "partitioner": ["none", "random", "ubp"][i % 3],
                "aggregator": ["none", "mean", "attention"][i % 3],
                "n_shards": [1, 10, 10][i % 3],
                "deletion.ratio": 0.05 if i < 3 else None,
                "deletion.count": None if i < 3 else 1,
                "deletion.rounds": 1 + i % 2,
            }
        )
    write_records(tmp_path / "default", default)
    report(str(tmp_path / "default"))
    written += [tmp_path / "default" / "tables" / f"{n}.tex" for n in ("utility", "efficiency", "completeness")]
    assert "Setting: partitioner, aggregator, shards" in written[-1].read_text()
    log = pdflatex(written, tmp_path)
    assert "Overfull \\hbox" not in log, re.findall(r"Overfull \\hbox.*", log)
    for tex in written:
        for tabular in re.findall(r"\\begin\{tabular\}\{@\{\}(l*)(r*)@\{\}\}", tex.read_text()):
            assert len(tabular[1]) - 1 <= MAX_VALUE_COLUMNS, tex.name  # value columns, n aside


def test_latex_groups_headers_and_splits_by_group(tmp_path):
    cols = [
        "before.ndcg@20",
        "after.ndcg@20",
        "retrain.ndcg@20",
        "fit_s",
        "unlearn_s",
        "exact_gap",
        "mia_auc.before",
        "mia_auc.after",
        "mia_auc.retrain",
    ]
    recs = [
        record(m, s, **{c: 0.1 * (i + 1) + s / 100 for i, c in enumerate(cols)})
        for m in ("sisa", "receraser")
        for s in (0, 1)
    ]
    write_records(tmp_path, recs)
    df, _ = load_records(tmp_path)
    render_spec("t", {"title": "Main", "rows": ["method"], "columns": cols}, df, tmp_path)
    tex = (tmp_path / "tables" / "t.tex").read_text()
    assert tex.count(r"\begin{table}") == 3  # utility, efficiency, completeness
    assert r"\multicolumn{3}{c}{NDCG@20}" in tex and r"\cmidrule(lr){2-4}" in tex
    assert r"\multicolumn{3}{c}{MIA AUC}" in tex and "Main (Efficiency)" in tex and r"\ref{tab:t}" in tex
    assert r"\small" in tex and r"\toprule" in tex and r"\bottomrule" in tex
    assert "Mean $\\pm$ std over seeds" in tex.split(r"\end{table}")[0]  # the legend with the first float
    md = (tmp_path / "tables" / "t.md").read_text()
    assert "### Utility" in md and "### Efficiency" in md and "### Completeness" in md
    csv = (tmp_path / "tables" / "t.csv").read_text().splitlines()[0].split(",")
    assert "after.ndcg@20" in csv and "mia_auc.retrain.std" in csv  # raw keys


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed (texlive-latex-base)")
def test_latex_escapes_what_latex_would_read_as_markup(tmp_path):
    recs = [
        record(m, s, **{"after.ndcg@20": 0.1 + s / 10}, dataset="ml_100k#1 & 50%") for m in ("a_b", "c") for s in (0, 1)
    ]
    write_records(tmp_path, recs)
    df, _ = load_records(tmp_path)
    render_spec(
        "t", {"title": "t: 10% of users_x", "rows": ["dataset", "method"], "columns": ["after.ndcg@20"]}, df, tmp_path
    )
    pdflatex([tmp_path / "tables" / "t.tex"], tmp_path)
