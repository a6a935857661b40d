"""Entity tags: IOB1/IOB2/BIOES checked and converted to IOB2, entities by the CoNLL rules, and scores.

Entity extraction and the scores follow the CoNLL-2003 evaluation (conlleval), which is also
`seqeval`'s default mode: an entity starts at B- (or S-), at an I- after O or after another type,
and ends before the next B-/S-/O or type change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

TagScheme = Literal["iob1", "iob2", "bioes"]
SCHEMES = ("iob1", "iob2", "bioes")
_PREFIXES = {"iob1": "BI", "iob2": "BI", "bioes": "BIES"}


def _where(i: int) -> str:
    return f"tag {i}"


def to_iob2(tags: Sequence[str], scheme: TagScheme = "iob2", *, repair: bool = False,
            where: Callable[[int], str] = _where) -> list[str]:
    """One sentence's tags in IOB2, checked against `scheme`.

    An I- (or E-) tag that cannot continue the entity before it, or a BIOES B-/I- that is not
    continued, is a `ValueError` naming `where(i)`; with `repair=True` the tag starts a new entity
    instead (what the CoNLL evaluation reads it as) and an unclosed BIOES entity simply ends.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}; choose one of {SCHEMES}")
    out: list[str] = []
    open_type: str | None = None  # type of the entity the previous tag leaves open to continuation
    pending: str | None = None  # BIOES: an entity that must be continued by I-/E- of this type
    for i, tag in enumerate(tags):
        prefix, type_ = _split(tag, scheme, where(i))
        if pending is not None and not (prefix in "IE" and type_ == pending) and not repair:
            raise ValueError(f"{where(i)}: {tags[i - 1]} is not continued by I-{pending} or E-{pending} "
                             f"in BIOES tags (pass repair=True to end the entity there)")
        pending = None
        if prefix == "O":
            out.append("O")
            open_type = None
            continue
        continues = open_type == type_
        if prefix in "IE" and not continues and scheme != "iob1" and not repair:
            before = "O" if i == 0 or tags[i - 1] == "O" else tags[i - 1]
            raise ValueError(f"{where(i)}: {tag} cannot follow {before if i else 'the sentence start'} in "
                             f"{scheme.upper()} tags (pass scheme='iob1' for IOB1 files, or repair=True "
                             f"to start a new entity here)")
        out.append(f"I-{type_}" if prefix in "IE" and continues else f"B-{type_}")
        open_type = type_ if prefix in "BI" else None
        if scheme == "bioes" and prefix in "BI":
            pending = type_
    if pending is not None and not repair:
        raise ValueError(f"{where(len(tags) - 1)}: {tags[-1]} ends the sentence without E-{pending} in BIOES tags "
                         f"(pass repair=True to end the entity there)")
    return out


def _split(tag: str, scheme: TagScheme, where: str) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    prefix, sep, type_ = tag.partition("-")
    if not sep or not type_ or len(prefix) != 1 or prefix not in _PREFIXES[scheme]:
        raise ValueError(f"{where}: {tag!r} is not an {scheme.upper()} tag (O, or "
                         f"{'/'.join(_PREFIXES[scheme])}- and a type, as in B-PER)")
    return prefix, type_


def iob2_to_bioes(tags: Sequence[str]) -> list[str]:
    """IOB2 → BIOES (single-token entities S-, last tokens E-)."""
    out = []
    for i, tag in enumerate(tags):
        nxt = tags[i + 1] if i + 1 < len(tags) else "O"
        continued = nxt.startswith("I-") and nxt[2:] == tag[2:]
        if tag.startswith("B-"):
            out.append(tag if continued else "S-" + tag[2:])
        elif tag.startswith("I-"):
            out.append(tag if continued else "E-" + tag[2:])
        else:
            out.append(tag)
    return out


# ------------------------------------------------------------------------------ entities


def entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, first, last) of every entity of one sentence, by the CoNLL rules (inclusive `last`)."""
    found = []
    prev_tag, prev_type, begin = "O", "", 0
    for i, chunk in enumerate([*tags, "O"]):
        tag = chunk[0]
        type_ = chunk[1:].split("-", maxsplit=1)[-1] or "_"
        if _ends(prev_tag, tag, prev_type, type_):
            found.append((prev_type, begin, i - 1))
        if _starts(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return found


def _ends(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if prev_tag in "ES":
        return True
    if prev_tag in "BI" and tag in "BSO":
        return True
    return prev_tag not in "O." and prev_type != type_


def _starts(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    if tag in "BS":
        return True
    if prev_tag in "ESO" and tag in "EI":
        return True
    return tag not in "O." and prev_type != type_


def entity_scores(true: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per entity type, plus "micro avg", "macro avg" and
    "weighted avg" rows (the rows of seqeval's report; an undefined ratio counts as 0)."""
    if len(true) != len(pred):
        raise ValueError(f"got {len(true)} true tag sequences but {len(pred)} predicted ones")
    gold: set[tuple[int, str, int, int]] = set()
    found: set[tuple[int, str, int, int]] = set()
    for n, (t, p) in enumerate(zip(true, pred, strict=True)):
        if len(t) != len(p):
            raise ValueError(f"sentence {n} has {len(t)} true tags but {len(p)} predicted ones")
        gold.update((n, *e) for e in entities(t))
        found.update((n, *e) for e in entities(p))
    types = sorted({e[1] for e in gold | found})
    rows = {k: _row(sum(1 for e in found & gold if e[1] == k), sum(1 for e in found if e[1] == k),
                    sum(1 for e in gold if e[1] == k)) for k in types}
    rows["micro avg"] = _row(len(found & gold), len(found), len(gold))
    support = sum(rows[k]["support"] for k in types)
    for avg in ("macro avg", "weighted avg"):
        weights = [1.0 if avg == "macro avg" else rows[k]["support"] for k in types]
        total = sum(weights) or 1.0
        rows[avg] = {m: sum(w * rows[k][m] for w, k in zip(weights, types, strict=True)) / total
                     for m in ("precision", "recall", "f1-score")} | {"support": support}
    return rows


def _row(tp: int, n_pred: int, n_true: int) -> dict[str, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_true if n_true else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1-score": f1, "support": n_true}


def report_text(rows: dict[str, dict[str, float]], digits: int = 4) -> str:
    """The rows of `entity_scores` as a table laid out like seqeval's classification report."""
    types = [k for k in rows if not k.endswith(" avg")]
    width = max(len("weighted avg"), *(len(k) for k in types))
    head = f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}"

    def line(name: str) -> str:
        r = rows[name]
        nums = " ".join(f"{r[m]:>9.{digits}f}" for m in ("precision", "recall", "f1-score"))
        return f"{name:>{width}} {nums} {int(r['support']):>9}"

    averages = [line(k) for k in ("micro avg", "macro avg", "weighted avg")]
    return "\n".join([head, "", *map(line, types), "", *averages]) + "\n"
