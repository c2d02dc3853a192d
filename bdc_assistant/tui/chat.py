"""The conversation the main screen shows, as plain state: no widgets, no engine.

:class:`ChatState` is what the app knows between events (the problem, its tests, the answers and their
code blocks, the run being streamed, what the status bar says) and keeps the conversation in the history
store; :class:`Run` is one answer being streamed. :mod:`.handler` is the one place that turns engine
events into changes of both.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..types import Answer, CancelToken, CodeToken, SolverEvent, TestCase, ThoughtToken, Verdict
from .codeblocks import CodeBlock
from .engine import EngineInfo

if TYPE_CHECKING:
    from textual.widgets._markdown import MarkdownStream

    from ..store.history import HistoryStore, Message
    from .engine import DeepProgress
    from .widgets import AnswerView


@dataclass
class Run:
    """The answer being streamed now. The worker thread queues events; the UI takes them in batches."""

    id: int
    problem: str
    cancel: CancelToken
    view: AnswerView
    plan_stream: MarkdownStream | None = None
    code_stream: MarkdownStream | None = None
    thought: str = ""
    code: str = ""
    detached: bool = False
    started: float = field(default_factory=time.monotonic)
    inbox: list[SolverEvent] = field(default_factory=list)
    wake_pending: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, event: SolverEvent) -> bool:
        """Queue an event (worker thread); True when the UI must be woken."""
        with self.lock:
            self.inbox.append(event)
            if self.wake_pending:
                return False
            self.wake_pending = True
            return True

    def take(self) -> list[SolverEvent]:
        """Everything queued so far, merged (UI thread)."""
        with self.lock:
            events, self.inbox, self.wake_pending = self.inbox, [], False
        return merge_tokens(events)

    async def stop_streams(self) -> None:
        for stream in (self.plan_stream, self.code_stream):
            if stream is not None:
                await stream.stop()
        self.plan_stream = self.code_stream = None


@dataclass
class ChatState:
    """Everything the main screen knows about the conversation and the local solver."""

    history: HistoryStore | None = None  # None: history is off
    info: EngineInfo = field(default_factory=EngineInfo)
    tokens_per_s: float | None = None
    deep_state: str = "off"
    conversation_id: int | None = None
    problem: str = ""
    user_tests: list[TestCase] = field(default_factory=list)
    example_tests: list[TestCase] = field(default_factory=list)
    blocks: list[CodeBlock] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    last_verdicts: list[Verdict] | None = None
    last_copy: str | None = None
    current: Run | None = None
    run_ids: int = 0

    def tests(self) -> list[TestCase]:
        """The tests an answer is run on: the statement's examples, then the user's own."""
        return [*self.example_tests, *self.user_tests]

    def new_problem(self, text: str) -> None:
        self.problem, self.example_tests, self.last_verdicts = text, [], None

    def add_block(self, code: str) -> CodeBlock | None:
        """Number a code block (None for an empty answer)."""
        if not code.strip():
            return None
        block = CodeBlock(len(self.blocks) + 1, "python", code)
        self.blocks.append(block)
        return block

    def block(self, number: int | None) -> CodeBlock | str:
        """Code block ``number`` (the newest for None), or one sentence saying why there is none."""
        if not self.blocks:
            return "There is no code block yet."
        if number is None:
            return self.blocks[-1]
        if not 1 <= number <= len(self.blocks):
            return f"There is no code block {number}; blocks are 1–{len(self.blocks)}."
        return self.blocks[number - 1]

    def reset(self) -> None:
        """A new conversation: the engine's status and the clipboard stay."""
        self.conversation_id, self.problem, self.last_verdicts = None, "", None
        self.blocks, self.answers, self.user_tests, self.example_tests = [], [], [], []

    # -- the history store -------------------------------------------------------------------------
    def remember_user(self, text: str) -> None:
        if self.history is not None:
            if self.conversation_id is None:
                self.conversation_id = self.history.new_conversation(text)
            self.history.add_user(self.conversation_id, text)

    def keep_answer(self, ans: Answer) -> None:
        self.answers.append(ans)
        if self.history is not None and self.conversation_id is not None:
            self.history.add_answer(self.conversation_id, ans)

    def keep_verdicts(self, code: str, tests: list[TestCase], verdicts: list[Verdict]) -> None:
        self.last_verdicts = verdicts
        if self.history is not None and self.conversation_id is not None:
            self.history.add_test_run(self.conversation_id, code, tests, verdicts)

    def keep_deep(self, p: DeepProgress) -> None:
        """A finished deep run joins the conversation of the problem it searched on."""
        if self.history is None or not self.problem:
            return
        if self.conversation_id is None:
            self.remember_user(self.problem)
        assert self.conversation_id is not None
        best = "–" if p.best_pr is None else f"{p.best_pr:.0%}"
        summary = f"best public PR {best}, {p.calls} calls, {len(p.nodes)} nodes, stopped by {p.stop_reason or 'done'}"
        self.history.add_deep(self.conversation_id, p.run_id, summary, p.best_code, p.spend_usd)


def plan_markdown(thought: str) -> str:
    """The plan as shown: empty numbered steps ("7.") that small base models emit are dropped."""
    lines = [ln for ln in thought.strip().splitlines() if not re.fullmatch(r"\s*\d+[.)]\s*", ln)]
    return "\n".join(lines).strip() or "_(no plan)_"


def merge_tokens(events: list[SolverEvent]) -> list[SolverEvent]:
    """Merge runs of same-kind tokens into one event. The worker queues every token and wakes the UI at
    most once per batch, so the UI handles as many updates as it can draw, however fast the backend
    streams (one message per token cost ~2 ms of UI time each and slowed llama.cpp on 2 cores)."""
    out: list[SolverEvent] = []
    for ev in events:
        prev = out[-1] if out else None
        if isinstance(ev, ThoughtToken) and isinstance(prev, ThoughtToken):
            out[-1] = ThoughtToken(prev.text + ev.text)
        elif isinstance(ev, CodeToken) and isinstance(prev, CodeToken):
            out[-1] = CodeToken(prev.text + ev.text)
        else:
            out.append(ev)
    return out


def answer_from_message(problem: str, m: Message) -> Answer:
    """A stored assistant message as the answer it was."""
    return Answer(
        problem=problem,
        thought=m.thought,
        solution_text=m.content,
        code=m.code,
        backend=m.backend or "",
        model=m.model or "",
        bundle=m.bundle,
        tokens=m.tokens or 0,
        seconds=m.seconds or 0.0,
        tokens_per_s=m.tokens_per_s or 0.0,
        cancelled=m.cancelled,
        gates=m.gates,
    )
