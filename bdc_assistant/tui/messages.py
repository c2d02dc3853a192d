"""What worker threads tell the app (Textual messages are thread-safe to post)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from ..types import TestCase, Verdict
from .engine import EngineInfo


@dataclass
class EngineWarm(Message):
    info: EngineInfo


@dataclass
class SolverWake(Message):
    """Events are waiting in the run's inbox (at most one of these is in flight per run)."""

    run_id: int


@dataclass
class SolverEnded(Message):
    run_id: int
    error: str | None = None


@dataclass
class TestsDone(Message):
    code: str
    tests: list[TestCase]
    verdicts: list[Verdict] | None
    error: str | None = None
    __test__ = False
