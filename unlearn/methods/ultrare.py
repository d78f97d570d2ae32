"""UltraRE (Li et al., "UltraRE: Enhancing RecEraser for Recommendation Unlearning via Error
Decomposition", NeurIPS 2023).

UltraRE reads RecEraser as an ensemble with three errors and fixes each:
- redundancy: users are grouped by balanced optimal-transport clustering of pretrained user
  embeddings (`partitioner=ot`), trading collaboration inside a group against balance;
- relevance: each group's sub-model is trained to convergence on its group (early stopping on
  the validation metric with patience; the record reports `shard_epochs`);
- combination: a simple combination estimator, a logistic regression over the K shard scores
  (`aggregator=linear`), replaces RecEraser's attention network.

Unlearning (inherited from `ShardedMethod`) retrains the groups the forget rows touch from their
own seeds on their retained rows, then refits the combiner from its seed on all retained rows.
The partition is kept (it was built from embeddings that saw F: `partition_uses_forget`).
Unlike the released code, which crashes on start and deletes twice the users it is asked to,
this implementation deletes exactly F and is exact: after unlearning it equals the same method
fitted from scratch on train minus F with the same partition and seeds.
"""

from __future__ import annotations

from ..registry import METHODS
from .base import ShardedMethod


@METHODS.register("ultrare")
class UltraRE(ShardedMethod):
    # keep (the paper's): the fit-time partition stays, `partition_drift` measures what it keeps of F;
    # rebuild: re-pretrain and re-partition on train minus F at every request (see ShardedMethod)
    defaults = {"partition_refresh": "keep"}
    allowed = {
        "partitioner": ["ot", "kmeans", "ubp", "random"],
        "aggregator": ["linear", "own_cross", "mean", "own"],
        "submodel": ["bpr", "bce", "mse", "wmf"],
    }

    def describe(self) -> dict:
        out = super().describe()
        info = self.partition.info if self.partition is not None else {}
        for key in ("iterations", "inertia", "converged"):
            if key in info:
                out[f"partition.{key}"] = info[key]
        for key in ("pretrain", "cluster"):
            if key in info:
                out.update(info[key].keys(f"partition.{key}"))
        if self.aggregator is not None and getattr(self.aggregator, "weight", None) is not None:
            out["aggregator.weight"] = self.aggregator.weight.detach().cpu().tolist()
        return out


from ..metrics.keys import KEYS  # noqa: E402

KEYS.declare("partition.iterations", "partition iterations", group="other", doc="clustering iterations")
KEYS.declare("partition.converged", "partition converged", group="other", doc="1 where the clustering converged")
KEYS.declare(
    "partition.inertia",
    "partition inertia",
    group="other",
    doc="sum of squared distances of the embeddings to their group's centroid",
)
for _part, _label in (("pretrain", "pretraining"), ("cluster", "clustering")):
    KEYS.declare_seconds(f"partition.{_part}", _label, f"the partition's {_label}", sub="partition")
