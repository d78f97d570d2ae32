"""What each record key means to a reader: its label, unit, which way is better, and the table group
it belongs to. Each module declares the keys it computes, next to the code that computes them
(`KEYS.declare(...)` at import time); tables and figures read labels and directions from here and
never guess them from a key's spelling.

A pattern may hold placeholders: `{stage}` (a stage of the run: before, after, retrain, popularity),
`{k}` (a cut-off, digits) and `{name}` (any dot-free word). `after.ndcg@20` matches
`{stage}.ndcg@{k}` with stage=after, k=20; the label and sub-label are formatted with those values.
A key whose stage is a reference (the retrain oracle, the popularity ranker) is a reference value:
tables never mark it best.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

GROUPS = ("utility", "efficiency", "completeness", "identity", "other")
BETTER = ("higher", "lower", None)
STAGES = ("before", "after", "retrain", "popularity")
REFERENCE_STAGES = ("retrain", "popularity")  # the oracle and a ranker that remembers nothing
_SLOTS = {"stage": "|".join(STAGES), "k": r"\d+", "name": r"[^.]+"}


@dataclass(frozen=True)
class KeyInfo:
    """How a table shows one record key. `label` heads the column (with `sub` under it, e.g. the
    stage); `better` is higher, lower or None (no best: a target value, a count, a reference)."""

    key: str
    label: str
    unit: str = ""
    better: str | None = None
    group: str = "other"
    sub: str = ""
    reference: bool = False
    doc: str = ""

    @property
    def header(self) -> str:
        """One-line header: label, sub-label and unit (`NDCG@20 after`, `fit (s)`)."""
        text = f"{self.label} {self.sub}".strip()
        return f"{text} ({self.unit})" if self.unit else text


@dataclass(frozen=True)
class _Pattern:
    pattern: str
    regex: re.Pattern
    info: KeyInfo


class KeyRegistry:
    def __init__(self) -> None:
        self._exact: dict[str, KeyInfo] = {}
        self._patterns: list[_Pattern] = []

    def declare_seconds(
        self,
        name: str,
        label: str,
        what: str,
        *,
        cpu_label: str | None = None,
        group: str = "efficiency",
        sub: str = "",
        reference: bool = False,
    ) -> None:
        """Declare a timed region's pair of keys: `<name>_s` (wall seconds of `what`) and
        `<name>_cpu_s` (process CPU seconds of it), both lower-is-better."""
        common = {"sub": sub, "unit": "s", "better": "lower", "group": group, "reference": reference}
        self.declare(f"{name}_s", label, doc=f"wall seconds of {what}", **common)
        self.declare(f"{name}_cpu_s", cpu_label or f"{label} CPU", doc=f"process CPU seconds of {what}", **common)

    def declare(
        self,
        pattern: str,
        label: str,
        *,
        unit: str = "",
        better: str | None = None,
        group: str = "other",
        sub: str = "",
        reference: bool = False,
        doc: str = "",
    ) -> None:
        """Declare a key (or a family of keys, with placeholders). Declaring the same pattern twice
        with other settings is an error (two modules disagreeing about one key)."""
        if better not in BETTER:
            raise ValueError(f"better must be one of {BETTER}, not {better!r} ({pattern})")
        if group not in GROUPS:
            raise ValueError(f"group must be one of {GROUPS}, not {group!r} ({pattern})")
        info = KeyInfo(pattern, label, unit, better, group, sub, reference, doc)
        slots = re.findall(r"\{(\w+)\}", pattern)
        if not slots:
            if self._exact.get(pattern, info) != info:
                raise ValueError(f"key {pattern!r} is declared twice with different settings")
            self._exact[pattern] = info
            return
        unknown = set(slots) - set(_SLOTS)
        if unknown:
            raise ValueError(f"unknown placeholder(s) {sorted(unknown)} in {pattern!r}; known: {sorted(_SLOTS)}")
        body = re.escape(pattern)
        for slot in slots:
            body = body.replace(re.escape("{" + slot + "}"), f"(?P<{slot}>{_SLOTS[slot]})", 1)
        for p in self._patterns:
            if p.pattern == pattern:
                if p.info != info:
                    raise ValueError(f"key pattern {pattern!r} is declared twice with different settings")
                return
        self._patterns.append(_Pattern(pattern, re.compile(f"^{body}$"), info))
        # the most specific pattern first: the one with the longest literal text
        self._patterns.sort(key=lambda p: -len(re.sub(r"\{\w+\}", "", p.pattern)))

    def get(self, key: str) -> KeyInfo | None:
        """The key's declaration with placeholders filled in, or None when nothing declares it."""
        if key in self._exact:
            return replace(self._exact[key], key=key)
        for p in self._patterns:
            m = p.regex.match(key)
            if m:
                values = m.groupdict()
                info = p.info
                ref = info.reference or values.get("stage") in REFERENCE_STAGES
                return replace(
                    info,
                    key=key,
                    label=info.label.format(**values),
                    sub=info.sub.format(**values),
                    doc=info.doc.format(**values),
                    reference=ref,
                    better=None if ref else info.better,
                )
        return None

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def patterns(self) -> list[str]:
        return sorted([*self._exact, *(p.pattern for p in self._patterns)])


KEYS = KeyRegistry()
