"""A deep-bench report split by CodeContests difficulty, as the paper's Table 2 splits CodeContests (easy 0–10,
hard 11–25).

Pure functions of the report's per-problem record (ids, difficulty ratings, accepted flags and private pass
rates), so a finished report is split without rerunning anything, and the split cannot disagree with the
table it sits under. Problems without a rating form their own band ("unrated") instead of being dropped, so
the bands always add up to the table's problem count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..evaluation.datasets import codecontests_band
from ..evaluation.metrics import bootstrap_mean_ci95, wilson_ci95

BANDS = ("easy", "hard", "unrated")


def split_by_difficulty(per_problem: Mapping[str, Any]) -> dict[str, Any]:
    """``{band: {"problems", "difficulty": [lowest, highest] or None, "methods": {name: row}}}``, a row being
    ``accepted``, ``ac`` (percent), ``ac_ci95`` (Wilson) and, where the record has private pass rates, ``pr``
    with its bootstrap ``pr_ci95``.
    A method whose record does not cover every problem (it cannot happen in one run) is left out."""
    ids: Sequence[str] = per_problem["ids"]
    ratings: Sequence[int | None] = per_problem["difficulty"]
    if len(ratings) != len(ids):
        raise ValueError(f"{len(ratings)} difficulty ratings for {len(ids)} problems")
    members: dict[str, list[int]] = {}
    for i, rating in enumerate(ratings):
        members.setdefault(codecontests_band(rating) or "unrated", []).append(i)
    private: Mapping[str, Sequence[float]] = per_problem.get("private", {})
    out: dict[str, Any] = {}
    for band in BANDS:
        idx = members.get(band)
        if not idx:
            continue
        rated = [r for r in (ratings[i] for i in idx) if r is not None]
        rows: dict[str, Any] = {}
        for name, flags in per_problem["accepted"].items():
            if len(flags) != len(ids):
                continue
            k = sum(int(flags[i]) for i in idx)
            row: dict[str, Any] = {
                "accepted": k,
                "ac": round(100 * k / len(idx), 2),
                "ac_ci95": list(wilson_ci95(k, len(idx))),
            }
            rates = private.get(name)
            if rates is not None and len(rates) == len(ids):
                band_rates = [rates[i] for i in idx]
                row["pr"] = round(100 * sum(band_rates) / len(idx), 2)
                row["pr_ci95"] = list(bootstrap_mean_ci95(band_rates))
            rows[name] = row
        out[band] = {
            "problems": len(idx),
            "difficulty": [min(rated), max(rated)] if rated else None,
            "methods": rows,
        }
    return out


def _pr_cell(row: Mapping[str, Any]) -> str:
    if "pr" not in row:
        return "–"
    ci = row.get("pr_ci95")
    return f"{row['pr']:.1f} [{ci[0]:.1f}–{ci[1]:.1f}]" if ci else f"{row['pr']:.1f}"


def split_markdown(split: Mapping[str, Any]) -> str:
    """The split as a Markdown table: one row per method, AC (Wilson CI) and PR (bootstrap CI) per band."""
    bands = [b for b in BANDS if b in split]
    if not bands:
        return ""

    def head(band: str) -> str:
        rng = split[band]["difficulty"]
        rating = f", rating {rng[0]}–{rng[1]}" if rng else ""
        return f"{band} ({split[band]['problems']}{rating})"

    lines = [
        "| method | " + " | ".join(f"{head(b)} AC % [95 % CI] | PR % [95 % CI]" for b in bands) + " |",
        "|---|" + "---:|---:|" * len(bands),
    ]
    names = list(split[bands[0]]["methods"])
    for name in names:
        cells = []
        for b in bands:
            row = split[b]["methods"].get(name)
            if row is None:
                cells += ["–", "–"]
                continue
            lo, hi = row["ac_ci95"]
            cells += [f"{row['ac']:.1f} [{lo:.1f}–{hi:.1f}]", _pr_cell(row)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
