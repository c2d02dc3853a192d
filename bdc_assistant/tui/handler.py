"""Solver events → the answer on screen: one ``match event`` reducer, and the one place an answer is drawn.

The app hands every batch of events of the current :class:`~.chat.Run` to :meth:`EventHandler.handle`.
A finished, cancelled or reopened answer is drawn by :func:`show_answer`, whichever way it ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from ..types import Answer, Checked, CodeToken, Gates, SolverEvent, StageDone, Started, ThoughtToken
from .chat import ChatState, Run, answer_from_message, plan_markdown
from .codeblocks import fence
from .widgets import AnswerView

if TYPE_CHECKING:
    from ..store.history import Conversation
    from .widgets import Transcript


def stats_line(ans: Answer) -> tuple[str, str]:
    """The numbers under an answer and their style class."""
    if ans.cancelled and not ans.tokens:
        return "cancelled", "cancelled"
    text = f"{ans.tokens} tokens · {ans.seconds:.1f}s · {ans.tokens_per_s:.1f} tok/s · {ans.model}"
    return (text + " · cancelled", "cancelled") if ans.cancelled else (text, "")


async def show_answer(view: AnswerView, ans: Answer, chat: ChatState) -> None:
    """Draw a whole answer (plan, numbered code block, numbers, gates) into its view."""
    await view.plan.update(plan_markdown(ans.thought))
    await view.code.update(fence(ans.code) if ans.code.strip() else "_(no code)_")
    block = chat.add_block(ans.code)
    if block is not None:
        view.set_block_number(block.number)
    view.set_stats(*stats_line(ans))
    view.gates, view.bundle = ans.gates, ans.bundle


async def replay(conv: Conversation, transcript: Transcript, chat: ChatState) -> None:
    """Draw a stored conversation's answers into an empty transcript (they are in the history already)."""
    chat.conversation_id = conv.id
    problem = ""
    for m in conv.messages:
        if m.role == "user":
            problem = m.content
        elif m.role == "assistant":
            ans = answer_from_message(problem, m)
            view = AnswerView(problem, len(chat.answers) + 1)
            await transcript.add(view)
            await show_answer(view, ans, chat)
            chat.answers.append(ans)
    chat.problem = problem


class EventHandler:
    """Applies solver events to the chat state and the current answer's widgets."""

    def __init__(
        self,
        chat: ChatState,
        show_gates: Callable[[Gates | None, str | None], None],
        refresh_status: Callable[[], None],
    ) -> None:
        self.chat = chat
        self.show_gates = show_gates
        self.refresh_status = refresh_status

    async def handle(self, run: Run, event: SolverEvent) -> None:
        match event:
            case Started(gates=gates, bundle=bundle):
                self.chat.info = replace(
                    self.chat.info, backend=event.backend, model=event.model, bundle=bundle, state="ready"
                )
                if gates is not None:
                    run.view.gates, run.view.bundle = gates, bundle
                    self.show_gates(gates, bundle)
                self.refresh_status()
            case ThoughtToken(text=text):
                run.thought += text
                if run.plan_stream is None:
                    run.plan_stream = run.view.plan.get_stream(run.view.plan)
                await run.plan_stream.write(text)
            case StageDone(stage="thought", text=text):
                await self._stop_plan(run, text)
                run.view.set_stats("writing code…")
            case CodeToken(text=text):
                if run.code_stream is None:
                    await self._stop_plan(run, run.thought)
                    run.code_stream = run.view.code.get_stream(run.view.code)
                    await run.code_stream.write("````python\n")
                run.code += text
                await run.code_stream.write(text)
            case Checked(repairing=True):
                # The model writes the code again after failing an example: the new version replaces the old.
                await run.stop_streams()
                run.code = ""
                await run.view.code.update("")
                run.view.set_stats(f"fixing: an example failed ({event.passed}/{event.total} passed)…")
            case Checked():
                run.view.set_stats(f"examples stated in the problem: {event.passed}/{event.total} passed")
            case StageDone():
                pass
            case Answer():
                await self.finish(run, event)

    async def _stop_plan(self, run: Run, text: str) -> None:
        if run.plan_stream is not None:
            await run.plan_stream.stop()
            run.plan_stream = None
            await run.view.plan.update(plan_markdown(text))
        elif not run.thought and text:
            await run.view.plan.update(text.strip())

    async def finish(self, run: Run, ans: Answer) -> None:
        """The solver's final answer (complete, or cut short by a cancel it noticed)."""
        await run.stop_streams()
        shown = replace(ans, thought=ans.thought or run.thought, code=ans.code or run.code)
        await show_answer(run.view, shown, self.chat)
        self.show_gates(ans.gates, ans.bundle)
        self.chat.tokens_per_s = ans.tokens_per_s or self.chat.tokens_per_s
        self.chat.keep_answer(ans)
        run.detached = True

    async def cancel(self, run: Run) -> None:
        """Esc: keep what was streamed so far as a cancelled answer, at once (late tokens are dropped)."""
        await run.stop_streams()
        info = self.chat.info
        partial = Answer(
            problem=run.problem,
            thought=run.thought.strip(),
            solution_text=run.code,
            code=run.code,
            backend=info.backend,
            model=info.model,
            bundle=info.bundle,
            tokens=0,
            seconds=time.monotonic() - run.started,
            tokens_per_s=0.0,
            cancelled=True,
            gates=run.view.gates,
        )
        await show_answer(run.view, partial, self.chat)
        run.detached = True
        self.chat.keep_answer(partial)

    async def fail(self, run: Run, message: str) -> None:
        await run.stop_streams()
        run.view.set_stats(message, "failed")
