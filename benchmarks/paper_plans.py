"""The plans of `make paper-tables` (benchmarks/paper_tables.py): each table with the overrides its
sweep runs with and why that size, one plan for a CPU and what it leaves for a GPU. Data only,
apart from looking a table's entries up and naming the command that runs one."""

from __future__ import annotations

# (table, overrides, why this size) that a 2-core CPU finishes in a few hours, cheapest first.
# A narrowed dataset keeps the paper's protocol on a smaller split; the title says so.
CPU_PLAN: list[tuple[str, list[str], str]] = [
    ("unlearn_als_paper", ["dataset=ml100k_als_paper", "seed=0,1,2"], "ML-100K, the paper's protocol, 3 seeds"),
    ("ultrare_main_mse", ["dataset=ml100k", "seed=0,1,2"], "ML-100K ratings, 3 seeds"),
    ("ultrare_main", ["dataset=ml100k_cure4rec", "seed=0,1,2"], "CURE4Rec ML-100K (bpr), 3 seeds"),
    ("ultrare_selection", ["dataset=ml100k_cure4rec", "seed=0,1,2"], "CURE4Rec ML-100K, 3 seeds"),
    (
        "eemu_main_cpu",
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "runtime.threads=1", "runtime.progress=false"],
        "ML-100K, the small two-tower (tuned/ml100k_twotower) under the tuned eemu_cpu preset, 3 seeds, and its "
        "ablations (no meta-learning, no adaptation, sequential updates), 3 seeds each: 27 runs, 100 min of one "
        "core on a loaded 2-core machine (an ablation seed about 21 min, most of it the sequential updates)",
    ),
    (
        "latency_stream",
        [
            "method=sisa,receraser,ultrare,unlearn_als",
            "completeness.exact_replica=false",
            "runtime.threads=1",
            "runtime.progress=false",
        ],
        "ML-1M (ml1m_cure4rec), the tuned presets, 20 single-user requests, seeds 0-2, without retrain's own "
        "stream (each speedup reads retrain's time for it as 20 fits of the oracle, `retrain_s`) and without the exact "
        "replica: 12 runs, about 30 min of one core a seed on a 2-core Xeon",
    ),
    (
        "realistic_requests",
        ["dataset=ml100k", "seed=0,1,2", "runtime.threads=1", "runtime.progress=false"],
        "ML-100K, the tuned presets, sensitive interactions and a spam campaign as streams, every method, 3 seeds "
        "(66 runs, 86 min of one core, two jobs at once; eemu_cpu at seeds 0 and 1 only, 4 runs, 46 min); the "
        "records also hold CURE4Rec ML-1M, seed 0, without retrain's own streams, ifru, EEMU and scif_ui's spam "
        "stream (17 runs, 63 min)",
    ),
    (
        "exact_vs_approx",
        ["dataset=ml100k", "runtime.threads=1", "runtime.progress=false"],
        "ML-100K, each method's default sub-model (bpr; als for Unlearn-ALS), 20 single-user requests and one of 5% "
        "of the users, every exact and approximate method, 3 seeds (66 runs, 98 min of one core, two jobs at once); "
        "the records also hold ML-100K wmf at seed 0 (20 runs, 28 min), ifru on lightgcn at seed 0 (3 runs, 29 min) "
        "and CURE4Rec ML-1M at seed 0 without retrain's and ifru's own streams (20 runs, 154 min)",
    ),
    (
        "receraser_utility",
        [
            "dataset=ml1m_receraser,yelp2018",
            "submodel=bpr_receraser",
            "seed=0",
            "completeness.seed_floor=false",
            "completeness.exact_replica=false",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "runtime.threads=1",
            "runtime.progress=false",
        ],
        "ML-1M and Yelp2018 with the released BPR preset only, seed 0, without the exact replica: 6 runs, 3.2 hours of "
        "one core on a loaded 2-core Xeon (Yelp2018: retrain 70 min, RecEraser 71 min, SISA 28 min); wmf and lightgcn "
        "and seeds 1-2 are left for a GPU",
    ),
]

# what the plan leaves for a GPU (full paper datasets; hours per sub-model on 2 CPU cores)
GPU_PLAN: list[tuple[str, list[str], str]] = [
    ("receraser_utility", ["runtime=gpu"], "ML-1M and Yelp2018, three sub-models, 3 seeds"),
    ("receraser_time", ["runtime=gpu"], "ML-1M, three sub-models"),
    ("receraser_partition", ["runtime=gpu"], "ML-1M, 4 partitions x 3 K"),
    ("ultrare_main", ["runtime=gpu"], "CURE4Rec ML-1M and ADM beside ML-100K"),
    ("ultrare_main_mse", ["runtime=gpu"], "ML-latest-small and ML-1M beside ML-100K"),
    ("ultrare_selection", ["runtime=gpu"], "CURE4Rec ML-1M and ADM"),
    ("unlearn_als_paper", ["runtime=gpu"], "ML-1M beside ML-100K"),
    ("eemu_main", ["runtime=gpu"], "two-tower meta-training on ML-100K and ML-1M"),
    ("latency_stream", ["runtime=gpu"], "20 single-user requests on ML-1M, every method"),
    ("realistic_requests", ["dataset=ml1m_cure4rec", "runtime=gpu"], "CURE4Rec ML-1M, every method, 3 seeds"),
    ("exact_vs_approx", ["dataset=ml1m_cure4rec", "runtime=gpu"], "CURE4Rec ML-1M, every method, 3 seeds"),
]


PLANS = {"cpu": CPU_PLAN, "gpu": GPU_PLAN}


def entries(name: str) -> list[tuple[str, list[str], str]]:
    """Every plan entry of table `name` as (plan, overrides, why), the CPU plan's first."""
    return [(plan, o, w) for plan, table in PLANS.items() for n, o, w in table if n == name]


def command(name: str, plan: str = "cpu") -> str:
    return f"python -m benchmarks.paper_tables {'--plan gpu ' if plan == 'gpu' else ''}--only {name}"
