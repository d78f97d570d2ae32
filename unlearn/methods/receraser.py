"""RecEraser (Chen, Sun, Zhang, Ding: "Recommendation Unlearning", WWW 2022).

Balanced partition of the training data (UBP / IBP / InBP on pretrained embeddings), one
sub-model per shard (BPR, WMF or LightGCN), and an attention aggregator trained on all retained
data with the shard models frozen. The released code has no unlearning path; here unlearning is
the SISA procedure the paper describes: retrain the shards the forget rows touch, each from its
own seed on its retained rows, then refit the aggregator from its seed on all retained rows.
Untouched shards stay bit-identical, so the unlearned model equals the exact replica (the same
method fitted on train minus F with the same partition and seeds). The partition is fixed at
fit time; its embeddings saw F (`partition_uses_forget`).
"""

from __future__ import annotations

from ..registry import METHODS
from .base import ShardedMethod


@METHODS.register("receraser")
class RecEraser(ShardedMethod):
    # keep (the paper's): the fit-time partition stays, `partition_drift` measures what it keeps of F;
    # rebuild: re-pretrain and re-partition on train minus F at every request (see ShardedMethod)
    defaults = {"partition_refresh": "keep"}
    allowed = {
        "partitioner": ["ubp", "ibp", "inbp", "random"],
        "aggregator": ["attention", "mean"],
        "submodel": ["bpr", "wmf", "lightgcn"],
    }

    def describe(self) -> dict:
        out = super().describe()
        info = self.partition.info
        for key in ("iterations", "converged", "greedy_rounds", "capacity", "empty_shards"):
            if key in info:
                out[f"partition.{key}"] = info[key]
        return out


from ..metrics.keys import KEYS  # noqa: E402

# the balanced partitioner's report (also written by UltraRE where its partitioner reports it)
KEYS.declare("partition.iterations", "partition iterations", group="other", doc="clustering iterations")
KEYS.declare("partition.converged", "partition converged", group="other", doc="1 where the clustering converged")
KEYS.declare(
    "partition.greedy_rounds",
    "partition greedy rounds",
    group="other",
    doc="rounds of the balanced partitioner's greedy assignment",
)
KEYS.declare("partition.capacity", "shard capacity", group="other", doc="the balanced partitioner's units per shard")
KEYS.declare("partition.empty_shards", "empty shards", group="other", doc="shards the partitioner left empty")
