"""Does the DisenLoRA row earn its place? The report's answer, per evaluated set, in numbers.

The claim a trained bundle has to support (the paper's Table 2, and what ``bdc retrain`` needs before it
switches) is: on held-out problems DisenLoRA solves more than the untuned base *and* no fewer than every
static row (SFT on all, SFT per cluster, TIES, DARE, TWIN). This module checks exactly that on the harness
records of the ``evaluate`` stage, set by set, and gives every difference its paired-bootstrap 95 % interval,
so a report that does not support the claim says so in one sentence instead of leaving it to the reader.

"More" is the point estimate (one problem more counts); whether the gain over the base is also outside the
noise is reported beside it (``significant``: the interval's lower end is above 0).
"""

from __future__ import annotations

from typing import Any

CANDIDATE = "DisenLoRA"


def verdict(
    results: dict[str, dict[str, list[dict[str, Any]]]], *, base: str, candidate: str = CANDIDATE
) -> dict[str, Any]:
    """{"base": str, "sets": {group: {...}}, "met": bool | None, "sentence": str} from ``{row: {group: [records]}}``.

    ``met`` is None when the table has no base or no candidate row (nothing to decide)."""
    if base not in results or candidate not in results:
        return {
            "base": base,
            "sets": {},
            "met": None,
            "sentence": f"No verdict: the table has no {base!r} or {candidate!r} row.",
        }
    sets: dict[str, Any] = {}
    for g in (g for g in results[candidate] if results[base].get(g)):
        ids = list(dict.fromkeys(rec["id"] for rec in results[candidate][g]))  # a problem's samples: once
        mine = outcomes_by_id(results[candidate][g], ids)
        base_solved = outcomes_by_id(results[base][g], ids)
        if mine is None or base_solved is None:
            continue
        vs_base = paired_difference(base_solved, mine)
        vs_rows = {}
        for row, per in results.items():
            theirs = None if row in (base, candidate) else outcomes_by_id(per.get(g, []), ids)
            if theirs is not None:
                vs_rows[row] = paired_difference(theirs, mine)
        ahead = [row for row, c in vs_rows.items() if c["diff"] < 0]
        beats_base = vs_base["diff"] > 0
        sets[g] = {
            "n": len(mine),
            "solved": count(sum(mine)),
            "vs_base": vs_base,
            "vs_rows": vs_rows,
            "beats_base": beats_base,
            "significant": vs_base["ci95"][0] > 0,
            "rows_ahead": ahead,
            "met": beats_base and not ahead,
        }
    met = bool(sets) and all(s["met"] for s in sets.values())
    return {
        "base": base,
        "sets": sets,
        "met": met if sets else None,
        "sentence": _sentence(sets, met, candidate),
    }


def outcomes_by_id(records: list[dict[str, Any]], ids: list[str]) -> list[float] | None:
    """Per problem, in the order of ``ids``, the share of its answers that solved it: 1.0 or 0.0 for one
    answer, the pass fraction for several samples. None when the records answer other problems (such a row
    is left out rather than paired wrongly)."""
    from bdc_assistant.evaluation.metrics import record_passed

    passes: dict[str, list[bool]] = {}
    for rec in records:
        passes.setdefault(rec["id"], []).append(bool(record_passed(rec)))
    if set(passes) != set(ids):
        return None
    return [sum(passes[i]) / len(passes[i]) for i in ids]


def paired_difference(other: list[float], mine: list[float]) -> dict[str, Any]:
    """The candidate (``mine``) against one row on the same problems: points ahead, with the paired CI."""
    from bdc_assistant.evaluation.metrics import paired_bootstrap_ci95

    lo, hi = paired_bootstrap_ci95(other, mine)
    return {
        "solved": count(sum(other)),
        "diff": round(100.0 * (sum(mine) - sum(other)) / len(mine), 2),
        "ci95": [lo, hi],
    }


def count(solved: float) -> int | float:
    """Problems solved: a whole number for one answer per problem, the expected number (2 decimals) for
    sampled answers."""
    return int(solved) if float(solved).is_integer() else round(solved, 2)


def _sentence(sets: dict[str, Any], met: bool, candidate: str) -> str:
    if not sets:
        return f"No verdict: {candidate} and the base were not answered on the same problems."
    if met:
        weak = [g for g, s in sets.items() if not s["significant"]]
        tail = f" (the gain over the base is inside the noise on {', '.join(weak)})" if weak else ""
        return f"Met: {candidate} beats the base and every static row on every evaluated set{tail}."
    reasons = []
    for g, s in sets.items():
        if s["met"]:
            continue
        why = []
        if not s["beats_base"]:
            d = s["vs_base"]
            why.append(f"{s['solved']} vs the base's {d['solved']} of {s['n']}")
        if s["rows_ahead"]:
            why.append("behind " + ", ".join(s["rows_ahead"]))
        reasons.append(f"{g}: " + "; ".join(why))
    return f"Not met: {candidate} does not beat the base and every static row ({' · '.join(reasons)})."


def markdown(v: dict[str, Any], candidate: str = CANDIDATE) -> str:
    """The report's verdict section: the sentence, then per set the candidate against every row."""
    lines = [f"### Does {candidate} beat the base and every static row?", "", f"**{v['sentence']}**", ""]
    for g, s in v["sets"].items():
        lines += [
            f"{g} ({s['n']} problems, {candidate} solves {s['solved']}):",
            "",
            f"| against | solved | {candidate} − row, points [paired 95% CI] |",
            "|---|---|---|",
        ]
        for row, c in [(f"{v['base']} (base)", s["vs_base"]), *s["vs_rows"].items()]:
            lines.append(
                f"| {row} | {c['solved']} | {c['diff']:+.2f} [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}] |"
            )
        lines.append("")
    return "\n".join(lines)
