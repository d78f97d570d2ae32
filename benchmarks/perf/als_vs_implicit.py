"""One ALS sweep of this suite's `als` sub-model vs the `implicit` library's CPU ALS, side by side
in one process, on the same data, from the same initial factors, with the same objective.

    python -m benchmarks.perf.als_vs_implicit [--dataset ml1m_cure4rec] [--sweeps 15] [--threads 1]
        [--factors 64] [--reg 0.01] [--alpha 1.0] [--solvers cholesky cg] [--cg-steps 3]

Pairs compared: our `solver: cholesky` (exact batched Cholesky solves) with implicit's exact
solver (`use_cg=False`), and our `solver: cg` with implicit's default conjugate-gradient solver
(`use_cg=True`, 3 steps). Same thread count for both (torch threads, implicit's `num_threads` and
every BLAS / OpenMP pool limited with threadpoolctl). Sweeps are interleaved (ours, then
implicit's, sweep after sweep) so that load from other processes hits both alike; the reported
time per sweep is the median over the sweeps (the mean is in the JSON).

Identical objectives: `implicit` (>= 0.5) takes the confidence matrix C itself (its own `alpha`
multiplies the matrix you pass; the correction uses C - 1 and the right-hand side uses C). Our
c = 1 + alpha * r is therefore passed to it as the matrix 1 + alpha * r with implicit's alpha = 1.
The check that the two solve the same problem: after one user half-sweep from the same item
factors, the user factors agree to float32 precision (`first_half_max_abs_diff`), and the
objectives (computed exactly by our Gram-trick objective for both models) agree after every sweep.

Utility: NDCG@20 (full sort over all items, train items masked, on the test split) of both
models after the same number of sweeps. Writes <out>/als_vs_implicit.json and .md.
"""

from __future__ import annotations

import argparse
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from .common import ROOT, load_named_dataset
from .harness import Contender, Timer, command, load_avg, publish


def run_pair(data, solver: str, args, evaluator) -> dict:
    """Ours and implicit with `solver`, from the same initial factors: set-up, the first user
    half-sweep compared, then `args.sweeps` interleaved sweeps with both objectives after each."""
    from implicit.cpu.als import AlternatingLeastSquares

    from unlearn.models.als import ImplicitALS
    from unlearn.runtime import CPU

    cfg = {
        "dim": args.factors,
        "reg": args.reg,
        "alpha": args.alpha,
        "solver": solver,
        "cg_steps": args.cg_steps,
        "confidence": "linear",
        "binarize": True,
        "dtype": "float32",
    }
    ours = ImplicitALS(data.n_users, data.n_items, cfg, runtime=CPU)
    gen = torch.Generator().manual_seed(args.seed)
    ours.reset_parameters(gen)
    x0, y0 = (t.detach().numpy().copy() for t in ours.embeddings())

    def setup_ours():
        ours.observe(data.train.users, data.train.items, data.train.ratings)
        if solver == "cholesky":  # the padded buckets are built once per observed matrix
            ours._by_user.plan(ours.dim, ours._gather_budget, ours._batch_cap)
            ours._by_item.plan(ours.dim, ours._gather_budget, ours._batch_cap)
        return ours

    def setup_implicit():  # fed the confidence matrix C = 1 + alpha r (implicit alpha = 1): the same objective
        users, items, raw = ours.observed_cells()
        w = ours.confidence_weights(torch.as_tensor(users), torch.as_tensor(items), torch.as_tensor(raw)).numpy()
        cui = sp.csr_matrix(((1.0 + w).astype(np.float32), (users, items)), shape=(data.n_users, data.n_items))
        ciu = cui.T.tocsr()
        theirs = AlternatingLeastSquares(
            factors=args.factors,
            regularization=args.reg,
            alpha=1.0,
            dtype=np.float32,
            use_cg=(solver == "cg"),
            iterations=1,
            num_threads=args.threads,
            random_state=args.seed,
            calculate_training_loss=False,
        )
        theirs.cg_steps = args.cg_steps
        theirs.user_factors, theirs.item_factors = x0.copy(), y0.copy()
        return theirs, cui, ciu, theirs.solver

    def sweep_ours(model):
        model.partial_fit_users()
        model.partial_fit_items()

    def sweep_implicit(st):
        theirs, cui, ciu, solve = st
        solve(cui, theirs.user_factors, theirs.item_factors, args.reg, num_threads=args.threads)
        solve(ciu, theirs.item_factors, theirs.user_factors, args.reg, num_threads=args.threads)

    probe = ImplicitALS(data.n_users, data.n_items, cfg, runtime=CPU)  # scores implicit's factors

    def probe_implicit(st):
        probe.set_factors(torch.as_tensor(st[0].user_factors), torch.as_tensor(st[0].item_factors))
        return probe

    timer = Timer(
        [
            Contender("ours", sweep_ours, setup_ours, lambda m, _: evaluator.evaluate(m.score, groups=False)),
            Contender(
                "implicit",
                sweep_implicit,
                setup_implicit,
                lambda st, _: evaluator.evaluate(probe_implicit(st).score, groups=False),
            ),
        ]
    ).set_up()

    # same problem? one user half-sweep from the same item factors
    theirs, cui, _, their_solve = timer.state["implicit"]
    ours.partial_fit_users()
    their_solve(cui, theirs.user_factors, theirs.item_factors, args.reg, num_threads=args.threads)
    first_diff = float(np.abs(ours.user_factors.detach().numpy() - theirs.user_factors).max())
    first_scale = float(np.abs(theirs.user_factors).max())
    ours.set_factors(torch.as_tensor(x0), torch.as_tensor(y0))
    theirs.user_factors, theirs.item_factors = x0.copy(), y0.copy()
    probe._set_cells(*ours._cells)

    ours_obj, theirs_obj = [], []

    def objectives(_, t):  # after every sweep, outside the timing
        ours_obj.append(ours.objective())
        theirs_obj.append(probe_implicit(t.state["implicit"]).objective())

    timer.run(args.sweeps, after=objectives)
    print(f"[{solver}] s/sweep spread (IQR) ours {timer.spread('ours'):.4f}  implicit {timer.spread('implicit'):.4f}")
    ndcg_ours, ndcg_theirs = (timer.score(n)["ndcg@20"] for n in ("ours", "implicit"))
    return {
        "ours": f"unlearn als solver={solver}",
        "implicit": f"implicit.cpu.als.AlternatingLeastSquares use_cg={solver == 'cg'}"
        + (f" cg_steps={args.cg_steps}" if solver == "cg" else ""),
        "sweep_s_ours": timer.median("ours"),
        "sweep_s_implicit": timer.median("implicit"),
        "sweep_s_ours_mean": timer.mean("ours"),
        "sweep_s_implicit_mean": timer.mean("implicit"),
        "ratio": timer.ratio("ours", "implicit"),
        "setup_s_ours": timer.setup_s["ours"],
        "setup_s_implicit": timer.setup_s["implicit"],
        "ndcg@20_ours": ndcg_ours,
        "ndcg@20_implicit": ndcg_theirs,
        "ndcg@20_rel_diff": (ndcg_ours - ndcg_theirs) / ndcg_theirs,
        "objective_ours": ours_obj,
        "objective_implicit": theirs_obj,
        "first_half_max_abs_diff": first_diff,
        "first_half_max_abs": first_scale,
        "sweep_times_ours": timer.times["ours"],
        "sweep_times_implicit": timer.times["implicit"],
    }


def markdown(res: dict) -> str:
    lines = [
        f"# ALS sweep: this suite vs implicit ({res['dataset']})",
        "",
        f"{res['n_users']} users x {res['n_items']} items, {res['n_train']} training cells; factors {res['factors']}, "
        f"reg {res['reg']}, alpha {res['alpha']} (c = 1 + alpha r, binarized), {res['sweeps']} sweeps from the same "
        f"initial factors, {res['threads']} thread(s) each, CPU ({res['cpu']}). Load average at start / end: "
        f"{res['load_avg_start']} / {res['load_avg_end']} (shared machine).",
        "",
        "| solver pair | s/sweep ours | s/sweep implicit | ratio (ours / implicit) | NDCG@20 ours | NDCG@20 implicit "
        "| rel. diff | objective ours | objective implicit |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in res["pairs"].items():
        lines.append(
            f"| {name} | {r['sweep_s_ours']:.3f} | {r['sweep_s_implicit']:.3f} | {r['ratio']:.2f}x | "
            f"{r['ndcg@20_ours']:.4f} | {r['ndcg@20_implicit']:.4f} | {100 * r['ndcg@20_rel_diff']:+.2f}% | "
            f"{r['objective_ours'][-1]:.2f} | {r['objective_implicit'][-1]:.2f} |"
        )
    lines += [
        "",
        "Time per sweep: median over the sweeps (one sweep = all users, then all items), setup excluded "
        "(ours: building the device CSR and padded buckets; implicit: building the CSR and its transpose):",
        "",
    ]
    for name, r in res["pairs"].items():
        lines.append(
            f"- {name}: setup ours {r['setup_s_ours']:.3f} s, implicit {r['setup_s_implicit']:.3f} s; "
            f"first user half-sweep from the same item factors: max |x_ours - x_implicit| = "
            f"{r['first_half_max_abs_diff']:.2e} (max |x| = {r['first_half_max_abs']:.2e})."
        )
    lines += ["", f"Target: time per sweep <= 1.0x implicit's with NDCG@20 within 1%. Command: `{res['command']}`", ""]
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml1m_cure4rec")
    parser.add_argument("--sweeps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--reg", type=float, default=0.01)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--cg-steps", type=int, default=3)
    parser.add_argument("--solvers", nargs="+", default=["cholesky", "cg"], choices=["cholesky", "cg"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "results" / "perf"))
    parser.add_argument("--cache-dir", default=os.environ.get("UNLEARN_CACHE_DIR"))
    args = parser.parse_args(argv)

    import implicit
    from threadpoolctl import threadpool_limits

    import unlearn  # noqa: F401  (fills the registries)
    from unlearn.metrics.ranking import RankingEvaluator

    torch.set_num_threads(args.threads)
    data = load_named_dataset(args.dataset, args.cache_dir)
    evaluator = RankingEvaluator(data.n_users, data.n_items, data.train, data.test, ks=(20,))
    res = {
        "dataset": args.dataset,
        "n_users": data.n_users,
        "n_items": data.n_items,
        "n_train": len(data.train),
        "factors": args.factors,
        "reg": args.reg,
        "alpha": args.alpha,
        "cg_steps": args.cg_steps,
        "sweeps": args.sweeps,
        "threads": args.threads,
        "seed": args.seed,
        "cpu": platform.processor() or platform.machine(),
        "n_cpus": os.cpu_count(),
        "versions": {"torch": torch.__version__, "implicit": implicit.__version__, "numpy": np.__version__},
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_avg_start": load_avg(),
        "command": command("als_vs_implicit", argv),
        "pairs": {},
    }
    with threadpool_limits(limits=args.threads):
        for solver in args.solvers:
            print(f"[{solver}] {args.sweeps} sweeps each ...", flush=True)
            r = run_pair(data, solver, args, evaluator)
            res["pairs"][solver] = r
            print(
                f"[{solver}] s/sweep ours {r['sweep_s_ours']:.3f}  implicit {r['sweep_s_implicit']:.3f}  "
                f"ratio {r['ratio']:.2f}x  ndcg@20 ours {r['ndcg@20_ours']:.4f}  implicit "
                f"{r['ndcg@20_implicit']:.4f}  first-half diff {r['first_half_max_abs_diff']:.1e}",
                flush=True,
            )
    res["load_avg_end"] = load_avg()
    publish(Path(args.out), "als_vs_implicit", res, args.threads, markdown(res), snapshot=True)
    return res


if __name__ == "__main__":
    main()
