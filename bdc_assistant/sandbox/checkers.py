"""Output checkers for problems that accept any valid answer ("print any of them").

A checker is a plain function ``(test_input, expected_output, actual_output) -> bool`` that runs in the
trusted parent; it must treat ``actual_output`` as hostile text (parse defensively, bound its work).
Problems name their checker in ``Problem.checker``. This registry imports none of its plug-ins: a module
that adds checkers (``evaluation/cc_checkers.py``) registers them when it is imported, and whoever hands
the sandbox problems that name them imports it first.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import SandboxError

Checker = Callable[[str, str, str], bool]

CHECKERS: dict[str, Checker] = {}


def register(name: str) -> Callable[[Checker], Checker]:
    def deco(fn: Checker) -> Checker:
        CHECKERS[name] = fn
        return fn

    return deco


def get_checker(name: str | None) -> Checker | None:
    if name is None:
        return None
    try:
        return CHECKERS[name]
    except KeyError:
        raise SandboxError(
            f"Unknown output checker '{name}'; known: {', '.join(sorted(CHECKERS))}."
        ) from None


@register("tokens_unordered")
def tokens_unordered(test_input: str, expected: str, actual: str) -> bool:
    """Same multiset of whitespace tokens (answers that may be printed in any order)."""
    return sorted(expected.split()) == sorted(actual.split())


@register("lines_unordered")
def lines_unordered(test_input: str, expected: str, actual: str) -> bool:
    """Same multiset of non-empty lines (whitespace-normalized)."""

    def norm(text: str) -> list[str]:
        return sorted(" ".join(line.split()) for line in text.splitlines() if line.strip())

    return norm(expected) == norm(actual)
