"""A `Table` -> LaTeX (booktabs) that fits a page: one `table` float per group of keys (utility,
efficiency, completeness, ...), each in `\\small` with at most MAX_VALUE_COLUMNS value columns and
no wider than a 6.5in text width (LINE_WIDTH, estimated from the cells' text); a wider group is
split into parts that repeat the row labels.
Columns sharing a label get one `\\multicolumn` header over their sub-labels, with a `\\cmidrule`.
The first float carries the caption's legend; the others point to it. Needs `booktabs`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .cells import Cell
from .layout import GROUP_TITLES, Column, Table, by_group

MAX_VALUE_COLUMNS = 8
# widths in digit widths of \small text (4.5pt): a 6.5in text width holds 104; a little is kept spare
LINE_WIDTH = 100
SMALL = 0.78  # a \scriptsize character (the spread, an interval) in digit widths
BOLD = 1.15  # a bold digit
PAD = 1.8  # the column separation (2 x 4pt)
STACK_CHARS = 12  # a single column's header longer than this is set on two lines
ROW_SHARE = 0.4  # row labels wider than this share of the line fold into one `setting` column
SETTING_CHARS = 24  # a setting longer than this is set on two lines
# how a folded setting reads (`5 shards`, `1 shard`); other keys show their value alone, `name=value` for cfg.*
SETTING_FORMATS = {
    "n_shards": ("{} shards", "{} shard"),
    "deletion.ratio": ("ratio {}", "ratio {}"),
    "deletion.count": ("{} deleted", "{} deleted"),
    "deletion.rounds": ("{} requests", "{} request"),
    "deletion.unit": ("per {}", "per {}"),
    "seed": ("seed {}", "seed {}"),
}
EMPTY = ("-", "none", "")
TABCOLSEP = "4pt"

_ESCAPES = {
    "\\": r"\textbackslash{}",
    "_": r"\_",
    "%": r"\%",
    "&": r"\&",
    "#": r"\#",
    "$": r"\$",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "≥": r"$\geq$",
    "≤": r"$\leq$",
    "†": r"\dag{}",
    "·": r"$\cdot$",
    "√": r"$\surd$",
    "×": r"$\times$",
    "−": r"$-$",
    "…": r"\dots{}",
    "→": r"$\rightarrow$",
}
_ESCAPE_RE = re.compile("|".join(re.escape(k) for k in _ESCAPES))


def escape(text: str) -> str:
    return _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group()], str(text))


def number(text: str) -> str:
    """A number's text with a true minus sign."""
    return text.replace("-", "$-$")


def cell_width(c: Cell) -> float:
    """About how wide a cell prints, in digit widths."""
    if c.value == "-":
        return 1.0
    small = (f"±{c.spread}" if c.spread else "") + (f"[{c.bounds[0]}, {c.bounds[1]}]" if c.bounds else "")
    main = (len(c.value) + 1.5 * c.at_least) * (BOLD if c.best else 1.0)
    return main + SMALL * (len(small) + 0.5 * bool(small)) + 0.6 * c.few_pairs


def tex_cell(c: Cell) -> str:
    if c.value == "-":
        return "--"
    text = (r"$\geq$" if c.at_least else "") + number(c.value)
    if c.spread:
        text += rf"{{\scriptsize\,$\pm$\,{number(c.spread)}}}"
    if c.best:
        text = rf"\textbf{{{text}}}"
    if c.bounds:
        text += rf"{{\scriptsize\,[{number(c.bounds[0])}, {number(c.bounds[1])}]}}"
    return text + (r"\textsuperscript{\dag}" if c.few_pairs else "")


def stack(text: str) -> list[str]:
    """A header on one line, or on two split at the space nearest its middle when long."""
    if len(text) <= STACK_CHARS or " " not in text:
        return [text]
    spaces = [i for i, ch in enumerate(text) if ch == " "]
    cut = min(spaces, key=lambda i: abs(i - len(text) / 2))
    return [text[:cut], text[cut + 1 :]]


def stacked(text: str) -> str:
    lines = stack(text)
    if len(lines) == 1:
        return escape(text)
    return r"\begin{tabular}[b]{@{}c@{}}" + r"\\".join(escape(x) for x in lines) + r"\end{tabular}"


def centred(text: str) -> str:
    """A header cell centred over its (right-aligned) numbers."""
    return rf"\multicolumn{{1}}{{c}}{{{text}}}"


def blocks(columns: list[Column]) -> list[list[Column]]:
    """Runs of adjacent columns sharing a label and unit (one grouped header each)."""
    out: list[list[Column]] = []
    for c in columns:
        if out and (out[-1][0].label, out[-1][0].unit) == (c.label, c.unit):
            out[-1].append(c)
        else:
            out.append([c])
    return out


def title_of(c: Column) -> str:
    return f"{c.label} ({c.unit})" if c.unit else c.label


def width(t: Table, c: Column) -> float:
    """About how wide column `c` prints: its widest cell or the line of its header under a shared
    label (its own label where it has none)."""
    cells = max((cell_width(x) for x in t.cells[c.key]), default=1.0)
    head = len(c.sub) if c.sub else max(len(x) for x in stack(title_of(c)))
    return max(cells, head) + PAD


def block_width(t: Table, block: list[Column]) -> float:
    """A block's width: its columns', or its shared label's where that is wider."""
    label = max(len(x) for x in stack(title_of(block[0]))) + PAD if block[0].sub or len(block) > 1 else 0
    return max(sum(width(t, c) for c in block), label)


def pack(t: Table, columns: list[Column], budget: float) -> list[list[Column]]:
    """Greedy: blocks sharing a label stay together unless one cannot fit alone, then column by
    column; a new part where MAX_VALUE_COLUMNS or `budget` characters would be passed."""
    out, cur, used = [], [], 0
    for block in blocks(columns):
        bw = block_width(t, block)
        if cur and (len(cur) + len(block) > MAX_VALUE_COLUMNS or used + bw > budget):
            out.append(cur)
            cur, used = [], 0
        if len(block) <= MAX_VALUE_COLUMNS and bw <= budget:
            cur, used = cur + block, used + bw
            continue
        for c in block:
            w = width(t, c)
            if cur and (len(cur) + 1 > MAX_VALUE_COLUMNS or used + w > budget):
                out.append(cur)
                cur, used = [], 0
            cur.append(c)
            used += w
    return out + ([cur] if cur else [])


def parts(t: Table, columns: list[Column], budget: float) -> list[list[Column]]:
    """The fewest parts `pack` needs within `budget`, as even as they come: the smallest budget
    that still needs no more parts."""
    most = pack(t, columns, budget)
    widths = [block_width(t, b) for b in blocks(columns)]
    fits = [w for b, w in zip(blocks(columns), widths) if len(b) <= MAX_VALUE_COLUMNS and w <= budget]
    for even in range(int(max([sum(widths) / len(most), *fits])), int(budget) + 1):
        packed = pack(t, columns, min(even, budget))
        if len(packed) <= len(most):
            return packed
    return most


@dataclass
class RowLabels:
    """The row-label columns as LaTeX shows them: their headers, each row's labels, and a caption
    sentence naming what a folded `setting` column holds."""

    headers: list[str]
    rows: list[tuple[str, ...]]
    note: str = ""

    @property
    def width(self) -> float:
        """About how wide the label columns print, in digit widths."""
        return sum(
            max([len(x) for x in stack(head)] + [max(len(x) for x in two_lines(r[j])) for r in self.rows]) + PAD
            for j, head in enumerate(self.headers)
        )


def setting(level: str, value: str) -> str:
    if level.startswith("cfg."):
        return f"{level.rsplit('.', 1)[-1]}={value}"
    many, one = SETTING_FORMATS.get(level, ("{}", "{}"))
    return (one if value == "1" else many).format(value)


def two_lines(text: str) -> list[str]:
    """A folded setting on one line, or on two split after the comma nearest its middle."""
    if len(text) <= SETTING_CHARS or ", " not in text:
        return [text]
    cuts = [m.start() for m in re.finditer(", ", text)]
    cut = min(cuts, key=lambda i: abs(i - len(text) / 2))
    return [text[: cut + 1], text[cut + 2 :]]


def row_labels(t: Table) -> RowLabels:
    """One column per row key, or, where they would take more than ROW_SHARE of the line, the
    keys after `method` (after the first key in a table without one) folded into one `setting`
    column: `bpr, ubp, attention, 5 shards` ('-' and none left out)."""
    plain = RowLabels(list(t.row_headers), list(t.rows))
    keep = t.levels.index("method") + 1 if "method" in t.levels else 1
    if plain.width <= ROW_SHARE * LINE_WIDTH or len(t.levels) - keep < 2:
        return plain
    rows = [
        (*r[:keep], ", ".join(setting(lv, v) for lv, v in zip(t.levels[keep:], r[keep:]) if v not in EMPTY))
        for r in t.rows
    ]
    note = f"Setting: {', '.join(t.row_headers[keep:])} ('-' and none left out)."
    return RowLabels([*t.row_headers[:keep], "setting"], rows, note)


def label_cell(text: str) -> str:
    lines = two_lines(text)
    if len(lines) == 1:
        return escape(text)
    return r"\begin{tabular}[t]{@{}l@{}}" + r"\\".join(escape(x) for x in lines) + r"\end{tabular}"


def header_lines(labels: RowLabels, cols: list[Column]) -> list[str]:
    nrow = len(labels.headers)
    row_heads = [stacked(h) for h in labels.headers]
    groups = blocks(cols)
    two = any(len(b) > 1 or b[0].sub for b in groups)
    if not two:
        return [" & ".join(row_heads + [centred(stacked(title_of(c))) for c in cols] + ["n"]) + r" \\"]
    top, rules, bottom, at = [""] * nrow, [], list(row_heads), nrow + 1
    for b in groups:
        if len(b) == 1 and not b[0].sub:  # a lone column without a sub-label: its label below
            top.append("")
            bottom.append(centred(stacked(title_of(b[0]))))
        else:
            top.append(rf"\multicolumn{{{len(b)}}}{{c}}{{{stacked(title_of(b[0]))}}}")
            rules.append(rf"\cmidrule(lr){{{at}-{at + len(b) - 1}}}")
            bottom += [centred(escape(c.sub)) for c in b]
        at += len(b)
    return [" & ".join(top + [""]) + r" \\", " ".join(rules), " & ".join(bottom + ["n"]) + r" \\"]


def body_lines(t: Table, labels: RowLabels, cols: list[Column]) -> list[str]:
    """Rows with repeated leading labels left blank, and a little space between best-groups."""
    lines, previous = [], None
    for i, row in enumerate(labels.rows):
        texts = [label_cell(x) for x in row]
        if previous is not None:
            for j in range(len(row)):
                if row[j] != previous[j]:
                    break
                texts[j] = ""
        if i in t.breaks:
            lines.append(r"\addlinespace")
        values = [tex_cell(t.cells[c.key][i]) for c in cols]
        lines.append(" & ".join(texts + values + [t.n[i]]) + r" \\")
        previous = row
    return lines


def latex(t: Table, name: str) -> str:
    """Every float of the table, one after another; the first holds the legend, `\\label`ed tab:<name>."""
    labels = row_labels(t)
    legend = " ".join([*t.legend, labels.note] if labels.note else t.legend)
    floats = [
        (group, cols)
        for group, columns in by_group(t.columns)
        for cols in parts(t, columns, max(LINE_WIDTH - labels.width - 1 - PAD, 20))
    ]
    first = f"tab:{name}"
    out = []
    for k, (group, cols) in enumerate(floats):
        same = [g for g, _ in floats].count(group)
        part = f"part {[g for g, _ in floats[: k + 1]].count(group)} of {same}" if same > 1 else ""
        which = ", ".join(x for x in (GROUP_TITLES[group] if GROUP_TITLES[group] != t.title else "", part) if x)
        head = escape(f"{t.title} ({which}). " if which else f"{t.title}. ")
        caption = head + (escape(legend) if k == 0 else rf"Notation as in Table~\ref{{{first}}}.")
        label = first if k == 0 else f"{first}:{k + 1}"
        spec = "@{}" + "l" * len(labels.headers) + "r" * (len(cols) + 1) + "@{}"
        out += [
            r"\begin{table}[tbp]",
            r"\centering",
            r"\small",
            rf"\setlength{{\tabcolsep}}{{{TABCOLSEP}}}",
            rf"\caption{{{caption}}}",
            rf"\label{{{label}}}",
            rf"\begin{{tabular}}{{{spec}}}",
            r"\toprule",
            *header_lines(labels, cols),
            r"\midrule",
            *body_lines(t, labels, cols),
            r"\bottomrule",
            r"\end{tabular}",
            r"\end{table}",
            "",
        ]
    return "\n".join(out)
