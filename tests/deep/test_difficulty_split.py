"""The deep-bench report split by CodeContests difficulty: pure functions of the per-problem record."""

from __future__ import annotations

import pytest

from bdc_assistant.deep.difficulty_split import split_by_difficulty, split_markdown

RECORD = {
    "ids": ["a", "b", "c", "d", "e"],
    "difficulty": [7, 11, 10, None, 25],
    "accepted": {"zero-shot[x]": [1, 0, 0, 0, 0], "mc-toa": [1, 1, 1, 0, 0], "short": [1]},
    "private": {"zero-shot[x]": [1.0, 0.2, 0.0, 0.5, 0.0], "mc-toa": [1.0, 1.0, 1.0, 0.4, 0.6]},
}


def test_the_bands_follow_the_papers_cut_and_add_up_to_every_problem() -> None:
    split = split_by_difficulty(RECORD)
    assert list(split) == ["easy", "hard", "unrated"]
    assert [(b["problems"], b["difficulty"]) for b in split.values()] == [
        (2, [7, 10]),
        (2, [11, 25]),
        (1, None),
    ]
    assert split["easy"]["methods"] == {
        "zero-shot[x]": {
            "accepted": 1,
            "ac": 50.0,
            "ac_ci95": [9.45, 90.55],
            "pr": 50.0,
            "pr_ci95": [0.0, 100.0],
        },
        "mc-toa": {
            "accepted": 2,
            "ac": 100.0,
            "ac_ci95": [34.24, 100.0],
            "pr": 100.0,
            "pr_ci95": [100.0, 100.0],
        },
    }  # "short" covers one problem of five: left out rather than split wrongly
    assert split["hard"]["methods"]["mc-toa"] == {
        "accepted": 1,
        "ac": 50.0,
        "ac_ci95": [9.45, 90.55],
        "pr": 80.0,
        "pr_ci95": [60.0, 100.0],  # two problems at 1.0 and 0.6: the resamples' means are 60, 80 and 100
    }
    assert split["unrated"]["methods"]["zero-shot[x]"]["pr"] == 50.0
    md = split_markdown(split).splitlines()
    assert md[3] == (
        "| mc-toa | 100.0 [34.2–100.0] | 100.0 [100.0–100.0] | 50.0 [9.4–90.5] | 80.0 [60.0–100.0] "
        "| 0.0 [0.0–79.3] | 40.0 [40.0–40.0] |"
    )


def test_a_record_without_private_rates_splits_ac_only_and_the_table_says_so() -> None:
    record = {k: v for k, v in RECORD.items() if k != "private"}
    split = split_by_difficulty(record)
    assert (
        "pr" not in split["easy"]["methods"]["mc-toa"] and "pr_ci95" not in split["easy"]["methods"]["mc-toa"]
    )
    md = split_markdown(split).splitlines()
    assert md[0] == (
        "| method | easy (2, rating 7–10) AC % [95 % CI] | PR % [95 % CI] | hard (2, rating 11–25) AC % [95 % CI] "
        "| PR % [95 % CI] | unrated (1) AC % [95 % CI] | PR % [95 % CI] |"
    )
    assert md[3] == "| mc-toa | 100.0 [34.2–100.0] | – | 50.0 [9.4–90.5] | – | 0.0 [0.0–79.3] | – |"


def test_ratings_that_do_not_match_the_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="4 difficulty ratings for 5 problems"):
        split_by_difficulty(RECORD | {"difficulty": [1, 2, 3, 4]})
