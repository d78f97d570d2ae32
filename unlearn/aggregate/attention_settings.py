"""How the attention aggregator resolves its `auto` settings (config keys of `aggregator=attention`).

Pure functions of the aggregator's config, the sub-model's config and the loss family, kept apart
from the aggregator so that each rule, and the reason for its default, is read in one place.

Optimiser, learning rate, Adagrad's initial accumulator, batch size, dropout on the aggregated user
vector and c0 default to the sub-model's values (`null`), as the released code shares them between
the local models and the aggregator; `optimizer: auto` / `lr: auto` (default) keep that for
`schedule: batch` and give the entity schedule an optimiser of its own (ENTITY_OPTIMIZER: Adam
0.005 for the BPR family, 0.01 for the WMF loss), whatever lr a tuned sub-model preset chose for
its shards. `reg: auto` (default) follows the released file that matches the sub-model: 1e-5 for
the BPR family (RecEraser_BPR.py / RecEraser_LightGCN.py; their BPR decay term is overwritten and
therefore not applied) and 0 for `wmf` (RecEraser_WMF.py applies no L2 to the transfer).
`transfer_init: auto` (default) follows the same file: `glorot` for the BPR family, `normal` for
`wmf`. `entity_batch` / `item_batch` `auto`: USER_BLOCKS x ITEM_BLOCKS blocks an epoch.
`lr_halvings: auto`: LR_HALVINGS plateaus answered on the entity schedule, none on the released
batch schedule.
"""

from __future__ import annotations

import math

from ..data.interactions import TrainSet
from ..errors import ConfigError

# `optimizer: auto` / `lr: auto` on the entity schedule, per loss family (schedule=batch takes the
# sub-model's, as released). WMF: the released Adagrad (lr 0.05, accumulator 1e-8) climbs for ~190
# epochs on ML-1M (197 s, test NDCG@20 0.3345); Adam 0.01 stops after 15 (15 s, 0.3326), same blocks,
# seed 0. BPR: the shards' lr is a poor fit for the aggregator once a preset tunes it for the shards:
# ML-100K, submodel=tuned/ml100k_bpr (lr 5.3e-4), UBP K = 10, 3 seeds, test NDCG@20 0.2775 +- 0.0165
# at the shards' lr against 0.2976 +- 0.0084 at 0.005 (10.2 / 10.0 s); 0.01 stops sooner and lower
# there (0.2860) and on ML-1M (0.2851 against 0.2892 +- 0.0014 at 0.005, the bpr class preset's lr).
ENTITY_OPTIMIZER = {"bpr": {"optimizer": "adam", "lr": 0.005}, "wmf": {"optimizer": "adam", "lr": 0.01}}
# `entity_batch: auto` / `item_batch: auto`: an epoch is USER_BLOCKS x ITEM_BLOCKS steps whatever the
# dataset's size (ml1m_cure4rec: blocks of 504 users x 427 items; ML-100K: 79 x 211), so patience counted in
# epochs means the same number of steps everywhere.
USER_BLOCKS, ITEM_BLOCKS = 12, 8
# `lr_halvings: auto` on the entity schedule: at a validation plateau the fit returns to its best
# state and halves the learning rate, this many times, before it stops (the released schedule: 0)
LR_HALVINGS = 2


def transfer_init(cfg: dict, family: str) -> str:
    """`transfer_init`, auto: the released file of the loss family (normal for wmf, glorot for bpr)."""
    init = cfg["transfer_init"]
    return ("normal" if family == "wmf" else "glorot") if init == "auto" else init


def transfer_reg(cfg: dict, family: str) -> float:
    """`reg` on the transfer's L2, auto: the released file of the loss family (0 for wmf, 1e-5 for bpr)."""
    reg = cfg["reg"]
    return (0.0 if family == "wmf" else 1.0e-5) if reg == "auto" else float(reg)


def optimizer_settings(cfg: dict, sub_cfg: dict, family: str) -> dict:
    """optimizer / lr / adagrad_init: a value, null (the sub-model's) or auto (the sub-model's
    on schedule=batch, as released; ENTITY_OPTIMIZER of the loss family on the entity schedule,
    its lr only with its optimiser)."""
    ours = cfg.get("optimizer") == "auto" and cfg["schedule"] == "entity"
    out = {}
    for key, fallback in (("optimizer", "adam"), ("lr", 1e-3), ("adagrad_init", 0.1)):
        value = cfg.get(key)
        if value == "auto":
            value = ENTITY_OPTIMIZER[family].get(key) if ours else None
        out[key] = sub_cfg.get(key, fallback) if value is None else value
    out["lr"] = float(out["lr"])
    return out


def lr_halvings(cfg: dict) -> int:
    """`lr_halvings`, auto: LR_HALVINGS on the entity schedule, 0 on the released batch schedule."""
    value = cfg["lr_halvings"]
    value = (LR_HALVINGS if cfg["schedule"] == "entity" else 0) if value == "auto" else int(value)
    if value < 0:
        raise ConfigError(f"aggregator.lr_halvings must be auto or an integer >= 0, got {value}.")
    return value


def block_sizes(cfg: dict, data: TrainSet, n_items: int) -> dict:
    """Users and items per step of schedule=entity (item_batch None: every item)."""
    if cfg["schedule"] != "entity":
        return {}
    n_users = int((data.train.user_counts(data.n_users) > 0).sum())
    out = {}
    for key, n, blocks in (("entity_batch", n_users, USER_BLOCKS), ("item_batch", n_items, ITEM_BLOCKS)):
        value = cfg.get(key)
        if value == "auto":
            value = max(1, math.ceil(n / blocks))
        elif value is not None:
            value = int(value)
            if value < 1:
                raise ConfigError(f"aggregator.{key} must be a positive integer, auto or null; got {value}.")
        out[key] = value
    if out["entity_batch"] is None:
        raise ConfigError("aggregator.entity_batch must be a positive integer or auto, not null.")
    return out
