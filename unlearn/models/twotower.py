"""Two-tower model (EEMU's sub-model, Alshabanah et al., PoPETs 2025).

A user tower and an item tower, each an MLP over the concatenated feature embeddings (user: id,
gender, age, occupation; item: id, release year, genres as the mean of their embeddings, title as
a projection of its local TF-IDF/SVD vector; ids only where a dataset has no side files), with
LayerNorm and GELU between layers; the score is the dot product of the two outputs. Released
architecture (the defaults): 96-d feature embeddings, user tower 384->512->256->128->64->128, item
tower 384->256->128->64->128.

Alone (`retrain`, `sisa`) it is trained plainly: margin ranking loss (margin 1) with one sampled
negative (rejected against the shard's positives) and one in-batch negative (the next row's
positive) per positive, early stopping on validation. Inside EEMU (`unlearn.methods.eemu.meta`)
the same functions are meta-trained: every forward is a pure function of a parameter dict
(`user_vec(p, users)`, `item_vec(p, items)`), so `torch.func.grad` / `vmap` give per-user
adapted weights without copying the module.

The feature arrays are buffers (saved in the state dict), so a cached model rebuilds itself from
its state alone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..registry import SUBMODELS
from ..runtime import CPU, Runtime
from ..training import TrainingTriples
from .base import EpochTrainedModel


def _take(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows `idx` (any shape) of `table`: index_select, which vmap batches (also for a batched
    0-d index looked up in a feature buffer first)."""
    return table.index_select(0, idx.reshape(-1)).reshape(*idx.shape, table.shape[-1])


def _idx(values: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """values[idx] for a 1-d buffer, vmap-safe."""
    return values.index_select(0, idx.reshape(-1)).reshape(idx.shape)


def _mlp(p: dict, prefix: str, x: torch.Tensor, n_layers: int) -> torch.Tensor:
    for j in range(n_layers):
        x = x @ p[f"{prefix}{j}_w"] + p[f"{prefix}{j}_b"]
        if j < n_layers - 1:
            x = F.layer_norm(x, x.shape[-1:], p[f"{prefix}{j}_g"], p[f"{prefix}{j}_beta"])
            x = F.gelu(x)
    return x


@SUBMODELS.register("twotower")
class TwoTower(EpochTrainedModel):
    loss_family = "margin"
    defaults = {
        **EpochTrainedModel.defaults,
        "lr": 1.0e-3,
        "emb_dim": 96,
        "user_layers": [512, 256, 128, 64, 128],
        "item_layers": [256, 128, 64, 128],
        "side_features": True,  # false: ids only, also where the dataset has side files
        "margin": 1.0,
        "in_batch_negative": True,  # plain training: also the next row's positive as a negative
        "init_std": 0.1,  # feature embeddings ~ N(0, init_std^2)
    }

    def __init__(self, n_users: int, n_items: int, cfg: dict | None = None, runtime: Runtime = CPU):
        super().__init__(n_users, n_items, cfg, runtime)
        self.built = False
        self._shapes: dict = {}

    # -- architecture ------------------------------------------------------------------
    def build(self, features=None) -> None:
        """Create the parameters for the given side features (`data.features.SideFeatures` or None)."""
        feats = features if self.cfg["side_features"] else None
        d = int(self.cfg["emb_dim"])
        user_in, item_in = [("ue_id", self.n_users)], [("ie_id", self.n_items)]
        if feats is not None:
            for name, idx in feats.user_cat.items():
                self.register_buffer(f"ux_{name}", torch.as_tensor(idx, dtype=torch.int64))
                user_in.append((f"ue_{name}", int(idx.max()) + 1))
            for name, idx in feats.item_cat.items():
                self.register_buffer(f"ix_{name}", torch.as_tensor(idx, dtype=torch.int64))
                item_in.append((f"ie_{name}", int(idx.max()) + 1))
            for name, mh in feats.item_multi.items():
                mh = torch.as_tensor(mh, dtype=torch.float32)
                self.register_buffer(f"im_{name}", mh / mh.sum(1, keepdim=True).clamp(min=1.0))
                item_in.append((f"ie_{name}", mh.shape[1]))
            for name, x in feats.item_dense.items():
                self.register_buffer(f"id_{name}", torch.as_tensor(x, dtype=torch.float32))
                item_in.append((f"ip_{name}", x.shape[1]))
        for name, rows in user_in + item_in:
            self.register_parameter(name, torch.nn.Parameter(torch.zeros(rows, d)))
        self._user_keys = [n for n, _ in user_in]
        self._item_keys = [n for n, _ in item_in]
        for prefix, n_in, layers in (
            ("ul", len(user_in) * d, self.cfg["user_layers"]),
            ("il", len(item_in) * d, self.cfg["item_layers"]),
        ):
            dims = [n_in, *[int(x) for x in layers]]
            for j in range(len(dims) - 1):
                self.register_parameter(f"{prefix}{j}_w", torch.nn.Parameter(torch.zeros(dims[j], dims[j + 1])))
                self.register_parameter(f"{prefix}{j}_b", torch.nn.Parameter(torch.zeros(dims[j + 1])))
                if j < len(dims) - 2:
                    self.register_parameter(f"{prefix}{j}_g", torch.nn.Parameter(torch.ones(dims[j + 1])))
                    self.register_parameter(f"{prefix}{j}_beta", torch.nn.Parameter(torch.zeros(dims[j + 1])))
        if len(self.cfg["user_layers"]) == 0 or int(self.cfg["user_layers"][-1]) != int(self.cfg["item_layers"][-1]):
            from ..errors import ConfigError

            raise ConfigError("submodel.user_layers and item_layers must end in the same output size.")
        self.built = True

    def reset_parameters(self, gen: torch.Generator) -> None:
        std = float(self.cfg["init_std"])
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name[:3] in ("ue_", "ie_"):
                    p.copy_(torch.randn(p.shape, generator=gen) * std)
                elif name[:3] == "ip_" or name.endswith("_w"):
                    p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[0]))
                elif name.endswith("_g"):
                    p.fill_(1.0)
                else:
                    p.zero_()

    def load_state_dict(self, state, strict: bool = True, assign: bool = False):
        if not self.built:  # a cached model: rebuild the feature layout from the saved buffers
            self.build(_features_from_state(state))
        return super().load_state_dict(state, strict=strict, assign=assign)

    # -- pure functions of a parameter dict ---------------------------------------------
    def tensors(self) -> dict:
        """Parameters and buffers by name: what the pure functions below read."""
        return {**dict(self.named_parameters()), **dict(self.named_buffers())}

    def user_input(self, p: dict, users: torch.Tensor) -> torch.Tensor:
        """The user tower's input: the user's feature embeddings, concatenated."""
        parts = [_take(p["ue_id"], users)]
        for key in self._user_keys[1:]:
            parts.append(_take(p[key], _idx(p["ux_" + key[3:]], users)))
        return torch.cat(parts, -1)

    def user_mlp(self, p: dict, x: torch.Tensor) -> torch.Tensor:
        return _mlp(p, "ul", x, len(self.cfg["user_layers"]))

    def user_vec(self, p: dict, users: torch.Tensor) -> torch.Tensor:
        return self.user_mlp(p, self.user_input(p, users))

    def item_vec(self, p: dict, items: torch.Tensor | None = None) -> torch.Tensor:
        """Item tower outputs of `items` (None: every item)."""
        sel = (lambda t: t) if items is None else (lambda t: _take(t, items) if t.dim() == 2 else _idx(t, items))
        parts = [sel(p["ie_id"])]
        for key in self._item_keys[1:]:
            name = key[3:]
            if key.startswith("ip_"):
                parts.append(sel(p["id_" + name]) @ p[key])
            elif "im_" + name in p:
                parts.append(sel(p["im_" + name]) @ p[key])
            else:
                parts.append(_take(p[key], sel(p["ix_" + name])))
        return _mlp(p, "il", torch.cat(parts, -1), len(self.cfg["item_layers"]))

    def user_keys(self) -> list[str]:
        """Parameter names of the user tower (what `adapt: user_tower` adapts)."""
        return [n for n, _ in self.named_parameters() if n.startswith(("ue_", "ul"))]

    def margin_loss(
        self, p: dict, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Margin ranking loss of (user, positive, negative) triples, weighted mean (weight: 0/1
        mask of padded rows). `neg` may carry one more trailing axis than `pos` (several negatives
        per positive: the loss of a row is the mean over its negatives, as MarginRankingLoss over
        the repeated positive)."""
        if neg.dim() == pos.dim():
            neg = neg.unsqueeze(-1)
        u = self.user_vec(p, users)
        diff = (u * self.item_vec(p, pos)).sum(-1).unsqueeze(-1) - (u.unsqueeze(-2) * self.item_vec(p, neg)).sum(-1)
        loss = F.relu(float(self.cfg["margin"]) - diff).mean(-1)
        if weight is None:
            return loss.mean()
        return (loss * weight).sum() / weight.sum().clamp(min=1.0)

    # -- plain training (EpochTrainedModel) --------------------------------------------
    def fit(self, data, seed):
        if not self.built:
            self.build(_get_features(data))
        return super().fit(data, seed)

    def prepare(self, data):
        self._triples = TrainingTriples(data.train.users, data.train.items, self.n_items, self.device)

    def batches(self, gen):
        return self._triples.epoch(gen, int(self.cfg["batch_size"]))

    def loss(self, batch):
        users, pos, neg = batch
        p = self.tensors()
        u = self.user_vec(p, users)
        ip, ineg = self.item_vec(p, pos), self.item_vec(p, neg)
        sp = (u * ip).sum(-1)
        m = float(self.cfg["margin"])
        loss = F.relu(m - sp + (u * ineg).sum(-1)).mean()
        if self.cfg["in_batch_negative"] and len(users) > 1:
            loss = loss + F.relu(m - sp + (u * ip.roll(1, 0)).sum(-1)).mean()
        return loss

    def score(self, users):
        p = self.tensors()
        return self.user_vec(p, users) @ self.item_vec(p).T

    def embeddings(self):
        p = self.tensors()
        with torch.no_grad():
            return self.user_vec(p, torch.arange(self.n_users, device=self.device)), self.item_vec(p)

    def finish(self):
        self._triples = None


def _get_features(data):
    f = getattr(data, "features", None)
    return f.get() if hasattr(f, "get") else f


def _features_from_state(state: dict):
    from ..data.features import SideFeatures

    feats = SideFeatures()
    for name, t in state.items():
        if name.startswith("ux_"):
            feats.user_cat[name[3:]] = t.cpu().numpy()
        elif name.startswith("ix_"):
            feats.item_cat[name[3:]] = t.cpu().numpy()
        elif name.startswith("im_"):
            feats.item_multi[name[3:]] = t.cpu().numpy()
        elif name.startswith("id_"):
            feats.item_dense[name[3:]] = t.cpu().numpy()
    if not (feats.user_cat or feats.item_cat or feats.item_multi or feats.item_dense):
        return None
    return feats
