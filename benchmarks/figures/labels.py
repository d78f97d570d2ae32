"""Settings as the figures' text: values as records spell them, and legend entries and titles that
name a method by only the settings that tell groups apart (`sisa (10 shards)`, `receraser
ubp/attention`), the retrain oracle as `retrain (oracle)`."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

ORACLE = "retrain (oracle)"
ORACLE_METHOD = "retrain"
_EMPTY = {"", "-", "none", "null", "nan", "None", "NaN"}  # a setting a group does not have
# settings shown as a bare value (`receraser ubp/attention`), and those shown with their name
_BARE = ("dataset", "submodel", "partitioner", "aggregator", "deletion.unit", "deletion.selection")
_NAMED = {
    "n_shards": ("{} shards", "{} shard", "shards"),
    "deletion.ratio": ("ratio {}", "ratio {}", "deletion ratio"),
    "deletion.count": ("{} deleted", "{} deleted", "deleted"),
    "deletion.rounds": ("{} rounds", "{} round", "rounds"),
    "n_forget_users": ("{} users forgotten", "{} user forgotten", "users forgotten"),
}
_METHOD_ONLY = ("partitioner", "aggregator", "n_shards")  # settings the retrain oracle has none of


def _text(value) -> str:
    """A setting as text: '-' where missing, 100 rather than 100.0."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else f"{float(value):g}"
    return str(value)


def _natural(value: str):
    """Sort key: numbers by value before words."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def _num(df, col):
    return pd.to_numeric(df[col], errors="coerce") if col in df else pd.Series(np.nan, index=df.index)


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _part(key: str, value: str) -> tuple[str, bool]:
    """(text, bare): how one setting reads in a legend entry."""
    if key in _NAMED:
        many, one, _ = _NAMED[key]
        return (one if value == "1" else many).format(value), False
    if key in _BARE:
        return value, True
    return f"{_short(key)}={value}", False


def _compose(head: str, bare: list[str], named: list[str]) -> str:
    text = " ".join(p for p in (head, "/".join(bare)) if p)
    if named:
        text = f"{text} ({', '.join(named)})" if text else ", ".join(named)
    return text


def _entry(values: dict[str, str], oracle: bool) -> str:
    """One legend entry: the method, then the settings of `values` it has (none of `none` / `-`)."""
    bare, named = [], []
    for key, value in values.items():
        if key == "method" or value in _EMPTY or (oracle and (key in _METHOD_ONLY or key.startswith("cfg."))):
            continue
        text, is_bare = _part(key, value)
        (bare if is_bare else named).append(text)
    if oracle:
        rest = _compose("", bare, named)
        return f"{ORACLE}, {rest}" if rest else ORACLE
    return _compose(values.get("method", ""), bare, named)


def _legend_title(varying: list[str], method: str | None) -> str:
    """What the legend's entries show, in the entries' own layout (`method partitioner/aggregator (shards)`)."""
    bare = [k.replace(".", " ") for k in varying if k in _BARE]
    named = [_NAMED[k][2] if k in _NAMED else _short(k) for k in varying if k != "method" and k not in _BARE]
    head = "method" if "method" in varying else ""
    rest = _compose(head, bare, named)
    if method:
        return f"{method}: {rest}" if rest else method
    return rest or "runs"
