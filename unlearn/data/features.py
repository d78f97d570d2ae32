"""Side features of users and items (EEMU's two-tower inputs), read from the files a dataset
already ships beside its interactions. A dataset without them gets ids only.

Known layouts (under the data root, `UNLEARN_DATA_DIR`):
- `ml-100k/u.user` (`id|age|gender|occupation|zip`) and `ml-100k/u.item` (`id|title|date|...|19 genre
  flags`), for datasets whose raw ids are ML-100K's (`ml100k`);
- `ml-1m/users.dat` (`UserID::Gender::Age::Occupation::Zip`) and `ml-1m/movies.dat`
  (`MovieID::Title::Genres`), for `ml1m_cure4rec`, whose uid is UserID - 1 and whose
  `ml-1m-cure4rec/item_map.csv` maps iid to MovieID.

Users: gender, age (ML-1M's 7 buckets; ML-100K ages are bucketed the same way), occupation. Items:
release year, genres (multi-hot, mean of genre embeddings), title. The released EEMU code embeds
titles with a downloaded 384-d sentence model; here (deviation, no download at run time) a title
is its TF-IDF word vector reduced by a seeded truncated SVD (randomised range finder) to
`TITLE_DIM` dimensions. Category index 0 is "unknown" (an id absent from the side files).
Features are fixed per id (part of the id universe, like the ids), never learned from train.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..seeding import numpy_rng
from .download import data_root

TITLE_DIM = 32
# the 19 genre flags of ML-100K's u.item, in column order (its u.genre)
ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                 "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                 "War", "Western")
AGE_EDGES = np.array([18, 25, 35, 45, 50, 56])  # ML-1M's age codes 1, 18, 25, 35, 45, 50, 56


@dataclass
class SideFeatures:
    """Per-id feature arrays over the remapped id universe."""

    user_cat: dict = field(default_factory=dict)    # name -> (n_users,) int64, 0 = unknown
    item_cat: dict = field(default_factory=dict)    # name -> (n_items,) int64, 0 = unknown
    item_multi: dict = field(default_factory=dict)  # name -> (n_items, m) float32 multi-hot
    item_dense: dict = field(default_factory=dict)  # name -> (n_items, d) float32
    names: dict = field(default_factory=dict)       # item_multi name -> its columns' names (genres)

    def describe(self) -> list[str]:
        return [*(f"user.{k}" for k in self.user_cat), *(f"item.{k}" for k in self.item_cat),
                *(f"item.{k}" for k in self.item_multi), *(f"item.{k}" for k in self.item_dense)]


class LazyFeatures:
    """Side features computed on first use (most runs never need them)."""

    def __init__(self, name: str, folder: str | None, user_map: np.ndarray, item_map: np.ndarray):
        self.name, self.folder = name, folder
        self.user_map, self.item_map = np.asarray(user_map), np.asarray(item_map)
        self._value: SideFeatures | None | bool = False

    def get(self) -> SideFeatures | None:
        if self._value is False:
            self._value = side_features(self.folder, self.user_map, self.item_map)
        return self._value


def _codes(values: pd.Series) -> np.ndarray:
    """Category codes 1..c in sorted order of the distinct values."""
    uniq = np.unique(values.astype(str).to_numpy())
    return np.searchsorted(uniq, values.astype(str).to_numpy()) + 1


def _lookup(raw_ids: np.ndarray, table_ids: np.ndarray, values: np.ndarray, fill=0) -> np.ndarray:
    """values[row of raw id in table_ids], `fill` where the id is absent."""
    order = np.argsort(table_ids)
    ids = table_ids[order]
    pos = np.searchsorted(ids, raw_ids).clip(max=len(ids) - 1)
    found = ids[pos] == raw_ids
    out = np.full((len(raw_ids),) + values.shape[1:], fill, dtype=values.dtype)
    out[found] = values[order][pos[found]]
    return out


def title_embedding(titles: list[str], dim: int = TITLE_DIM, seed: int = 0) -> np.ndarray:
    """TF-IDF of title words (year in parentheses dropped), reduced by a seeded randomised SVD,
    rows scaled to unit norm."""
    from scipy import sparse

    docs = [re.findall(r"[a-z0-9']+", re.sub(r"\(\d{4}\)", " ", t.lower())) for t in titles]
    vocab = {w: j for j, w in enumerate(sorted({w for d in docs for w in d}))}
    rows, cols = [], []
    for r, d in enumerate(docs):
        for w in d:
            rows.append(r)
            cols.append(vocab[w])
    n = len(titles)
    if not vocab:
        return np.zeros((n, dim), dtype=np.float32)
    tf = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, len(vocab)))
    df = np.bincount(np.unique(np.stack([rows, cols]), axis=1)[1], minlength=len(vocab))
    idf = np.log((1 + n) / (1 + df)) + 1.0
    x = tf @ sparse.diags(idf)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(1))).ravel()
    x = sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ x
    k = min(dim, min(x.shape) - 1) if min(x.shape) > 1 else 1
    rng = numpy_rng(seed, "features", "title_svd")
    q = np.linalg.qr(x @ rng.standard_normal((x.shape[1], k + 10)))[0]
    for _ in range(4):  # power iterations
        q = np.linalg.qr(x @ (x.T @ q))[0]
    u, s, _ = np.linalg.svd(np.asarray(x.T @ q).T, full_matrices=False)
    emb = (q @ u[:, :k]) * s[:k]
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    out = np.zeros((n, dim), dtype=np.float32)
    out[:, :k] = emb
    return out


def _year(text: pd.Series) -> np.ndarray:
    y = text.astype(str).str.extract(r"(\d{4})\D*$")[0]
    return pd.to_numeric(y, errors="coerce").fillna(0).astype(np.int64).to_numpy()


def _year_codes(year: np.ndarray) -> np.ndarray:
    """Release year as a category (1..), 0 unknown."""
    known = year > 0
    out = np.zeros(len(year), dtype=np.int64)
    if known.any():
        out[known] = year[known] - year[known].min() + 1
    return out


def _ml100k(root: Path):
    u = pd.read_csv(root / "u.user", sep="|", header=None, names=["id", "age", "gender", "occ", "zip"], encoding="latin-1")
    users = (u["id"].to_numpy(), {"gender": _codes(u["gender"]),
                                   "age": np.searchsorted(AGE_EDGES, u["age"].to_numpy(), side="right") + 1,
                                   "occupation": _codes(u["occ"])})
    it = pd.read_csv(root / "u.item", sep="|", header=None, encoding="latin-1")
    genres = it.iloc[:, 5:24].to_numpy(dtype=np.float32)
    titles = it[1].fillna("").astype(str)
    year = _year(it[2].fillna(""))
    year = np.where(year > 0, year, _year(titles.str.extract(r"\((\d{4})\)")[0].fillna("")))
    return users, (it[0].to_numpy(), year, genres, titles.tolist(), list(ML100K_GENRES))


def _ml1m(root: Path, item_map: Path):
    u = pd.read_csv(root / "users.dat", sep="::", header=None, names=["id", "gender", "age", "occ", "zip"],
                    engine="python", encoding="latin-1")
    users = (u["id"].to_numpy() - 1, {"gender": _codes(u["gender"]), "age": _codes(u["age"]),
                                       "occupation": u["occ"].to_numpy(dtype=np.int64) + 1})
    m = pd.read_csv(root / "movies.dat", sep="::", header=None, names=["id", "title", "genres"], engine="python",
                    encoding="latin-1")
    names = sorted({g for gs in m["genres"] for g in gs.split("|")})
    genres = np.zeros((len(m), len(names)), dtype=np.float32)
    for r, gs in enumerate(m["genres"]):
        for g in gs.split("|"):
            genres[r, names.index(g)] = 1.0
    titles = m["title"].astype(str)
    year = _year(titles.str.extract(r"\((\d{4})\)")[0].fillna(""))
    imap = pd.read_csv(item_map)  # movie_id,iid
    iid = _lookup(m["id"].to_numpy(), imap["movie_id"].to_numpy(), imap["iid"].to_numpy(), fill=-1)
    keep = iid >= 0
    return users, (iid[keep], year[keep], genres[keep], [t for t, k in zip(titles, keep) if k], names)


def side_features(folder: str | None, user_map: np.ndarray, item_map: np.ndarray) -> SideFeatures | None:
    """Features for the remapped ids (user_map / item_map: raw id of each id), or None."""
    root = data_root()
    if folder == "ml-100k" and (root / "ml-100k" / "u.user").is_file() and (root / "ml-100k" / "u.item").is_file():
        users, items = _ml100k(root / "ml-100k")
    elif folder == "ml-1m-cure4rec" and all((root / p).is_file() for p in (
            "ml-1m/users.dat", "ml-1m/movies.dat", "ml-1m-cure4rec/item_map.csv")):
        users, items = _ml1m(root / "ml-1m", root / "ml-1m-cure4rec" / "item_map.csv")
    else:
        return None
    raw_u = np.asarray(user_map).astype(np.int64)
    raw_i = np.asarray(item_map).astype(np.int64)
    uid, ucols = users
    feats = SideFeatures()
    for name, codes in ucols.items():
        feats.user_cat[name] = _lookup(raw_u, uid, np.asarray(codes, dtype=np.int64))
    iid, year, genres, titles, genre_names = items
    feats.item_cat["year"] = _lookup(raw_i, iid, _year_codes(year))
    feats.item_multi["genre"] = _lookup(raw_i, iid, genres, fill=0.0)
    feats.names["genre"] = genre_names
    feats.item_dense["title"] = _lookup(raw_i, iid, title_embedding(titles), fill=0.0)
    return feats
