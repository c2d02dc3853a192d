"""The assistant as an Agent Client Protocol agent (``bdc acp``; the SDK is the ``acp`` package).

- ``initialize`` / ``session/new``: every session starts in mode ``local`` (the customized local solver).
  Mode ``deep`` (MC-Tree-of-Agents over the configured ``deep.agents``) is listed only when agents are
  configured.
- ``session/prompt``: the problem is the prompt's text (plus any embedded text resources); the customization
  is announced as an agent thought, then the plan and the code stream as agent message chunks — the same
  Markdown ``bdc serve`` returns. The response's ``_meta.bdc`` carries the gates summary and expert mixture.
- ``session/cancel``: sets the prompt's :class:`CancelToken`; generation stops at the next token and the
  prompt answers ``stopReason: cancelled``.
- Deep mode sends data off the machine, so the consent rules of :mod:`bdc_assistant.deep.consent` apply
  unchanged: without consent on record for these hosts, the agent first sends ``session/request_permission``
  with the consent text; "allow once" records consent for that run only, "allow always" records it for
  later runs to the same hosts, anything else sends nothing and answers locally instead. The deep runner
  checks the recorded consent again before its first call.

The solver is synchronous; it runs in a worker thread and its items cross to the event loop through an
``asyncio.Queue``. One solve runs at a time (one loaded model), whatever the number of sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..backends.base import CancelToken
from ..errors import BdcError
from ..serve.jobs import Begin, Delta, End, Sampling, solve_job

if TYPE_CHECKING:
    from ..config import Settings

LOCAL, DEEP = "local", "deep"
ALLOW_ONCE, ALLOW_ALWAYS, REJECT = "allow_once", "allow_always", "reject"


@dataclass
class _Session:
    id: str
    cwd: str
    mode: str = LOCAL
    cancel: CancelToken | None = None
    history: list[str] = field(default_factory=list)


def prompt_text(blocks: list[Any]) -> str:
    """The problem: text blocks in order, and embedded text resources (a file the user attached)."""
    parts: list[str] = []
    for block in blocks:
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(str(block.text))
        elif kind == "resource":
            res = getattr(block, "resource", None)
            text = getattr(res, "text", None)
            if isinstance(text, str):
                uri = getattr(res, "uri", "") or "attached file"
                parts.append(f"{uri}:\n```\n{text}\n```")
    return "\n\n".join(p for p in parts if p.strip())


def customization_line(bdc: dict[str, Any]) -> str:
    """One human line about how this answer was customized (shown as an agent thought)."""
    head = f"bdc · {bdc.get('backend', '?')} · {bdc.get('base_model', '?')}"
    if bdc.get("customized"):
        mix = " · ".join(f"{e['cluster']} {e['share']:.2f}" for e in bdc.get("experts") or [])
        return f"{head} · bundle {bdc.get('bundle')} · experts: {mix}\n"
    return f"{head} · {bdc.get('note') or 'plain base model'}\n"


class BdcAcpAgent:
    """Implements the SDK's ``acp.Agent`` protocol (methods are looked up by name)."""

    def __init__(
        self,
        settings: Settings,
        *,
        solver_factory: Callable[[], Any] | None = None,
        deep_runner_factory: Callable[[], Any] | None = None,
        sampling: Sampling | None = None,
    ) -> None:
        self.settings = settings
        self._solver_factory = solver_factory or self._open_solver
        self._deep_runner_factory = deep_runner_factory
        self._sampling = sampling or Sampling()
        self._conn: Any = None
        self._sessions: dict[str, _Session] = {}
        self._solver: Any = None
        self._loading: asyncio.Future[Any] | None = None
        self._busy = asyncio.Lock()  # one loaded model: one solve at a time

    # ---- wiring ------------------------------------------------------------------------------------

    def on_connect(self, conn: Any) -> None:
        self._conn = conn

    def _open_solver(self) -> Any:
        from ..solver.session import open_solver

        return open_solver(self.settings)

    async def _get_solver(self) -> Any:
        if self._solver is not None:
            return self._solver
        if self._loading is None:
            self._loading = asyncio.get_running_loop().run_in_executor(None, self._solver_factory)
        try:
            self._solver = await asyncio.shield(self._loading)
        except BaseException:
            self._loading = None  # let the next prompt try again (and say why again)
            raise
        return self._solver

    def close(self) -> None:
        solver, self._solver = self._solver, None
        if solver is not None:
            with contextlib.suppress(Exception):
                solver.close()

    def _deep_agents(self) -> list[Any]:
        if not self.settings.deep.agents:
            return []
        from ..deep.providers.presets import parse_agent, unique_names

        return unique_names([parse_agent(a) for a in self.settings.deep.agents])

    def _session(self, session_id: str) -> _Session:
        from acp import RequestError

        session = self._sessions.get(session_id)
        if session is None:
            raise RequestError.invalid_params({"sessionId": session_id, "reason": "unknown session"})
        return session

    async def _say(self, session_id: str, text: str, *, thought: bool = False) -> None:
        from acp import update_agent_message_text, update_agent_thought_text

        update = update_agent_thought_text(text) if thought else update_agent_message_text(text)
        await self._conn.session_update(session_id=session_id, update=update)

    # ---- protocol methods ----------------------------------------------------------------------------

    async def initialize(
        self, protocol_version: int, client_capabilities: Any = None, client_info: Any = None, **kwargs: Any
    ) -> Any:
        from acp import PROTOCOL_VERSION, InitializeResponse
        from acp.schema import AgentCapabilities, Implementation, PromptCapabilities

        return InitializeResponse(
            protocol_version=min(int(protocol_version), PROTOCOL_VERSION),
            agent_capabilities=AgentCapabilities(
                load_session=False, prompt_capabilities=PromptCapabilities(embedded_context=True)
            ),
            agent_info=Implementation(name="bdc-assistant", title="bdc-assistant", version=__version__),
        )

    async def new_session(self, cwd: str, mcp_servers: Any = None, **kwargs: Any) -> Any:
        from acp import NewSessionResponse
        from acp.schema import SessionMode, SessionModeState

        session = _Session(id=uuid.uuid4().hex, cwd=cwd)
        self._sessions[session.id] = session
        modes = [
            SessionMode(
                id=LOCAL, name="Local", description="the customized local model; nothing leaves this machine"
            )
        ]
        try:
            agents = self._deep_agents()
        except BdcError:
            agents = []  # a broken deep.agents entry must not stop local answers; deep mode says why later
        if agents:
            hosts = ", ".join(sorted({a.base_url or a.kind for a in agents}))
            modes.append(
                SessionMode(
                    id=DEEP,
                    name="Deep",
                    description=f"MC-Tree-of-Agents over {len(agents)} LLM(s) at {hosts}; asks before sending anything",
                )
            )
        if self._solver is None and self._loading is None:
            # Start loading now so the first prompt does not pay for it (errors surface at that prompt).
            self._loading = asyncio.get_running_loop().run_in_executor(None, self._solver_factory)
        return NewSessionResponse(
            session_id=session.id, modes=SessionModeState(current_mode_id=LOCAL, available_modes=modes)
        )

    async def set_session_mode(self, session_id: str, mode_id: str, **kwargs: Any) -> Any:
        from acp import RequestError, SetSessionModeResponse

        session = self._session(session_id)
        if mode_id == DEEP and not self._deep_agents():
            raise RequestError.invalid_params(
                {
                    "modeId": mode_id,
                    "reason": "deep mode needs deep.agents in the config (provider:URL:model)",
                }
            )
        if mode_id not in (LOCAL, DEEP):
            raise RequestError.invalid_params({"modeId": mode_id, "reason": "unknown mode"})
        session.mode = mode_id
        return SetSessionModeResponse()

    async def cancel(self, session_id: str, **kwargs: Any) -> None:
        session = self._sessions.get(session_id)
        if session is not None and session.cancel is not None:
            session.cancel.cancel()

    async def prompt(self, prompt: list[Any], session_id: str, **kwargs: Any) -> Any:
        from acp import PromptResponse

        session = self._session(session_id)
        text = prompt_text(prompt)
        if not text.strip():
            await self._say(session_id, "The prompt has no text to answer.")
            return PromptResponse(stop_reason="end_turn")
        cancel = CancelToken()
        session.cancel = cancel
        try:
            if session.mode == DEEP:
                return await self._deep(session, text, cancel)
            return await self._local(session, text, cancel)
        except BdcError as exc:  # one sentence for the user, as the CLI would print it
            await self._say(session_id, f"bdc: {exc}")
            return PromptResponse(stop_reason="end_turn")
        finally:
            session.cancel = None

    # ---- local answer ----------------------------------------------------------------------------------

    async def _local(self, session: _Session, text: str, cancel: CancelToken) -> Any:
        from acp import PromptResponse

        solver = await self._get_solver()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        done = object()

        def emit(item: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                solve_job(solver, text, self._sampling, cancel, emit)
            except BaseException as exc:
                emit(exc)
            finally:
                emit(done)

        async with self._busy:
            if cancel.cancelled:
                return PromptResponse(stop_reason="cancelled")
            threading.Thread(target=work, name="bdc-acp-solve", daemon=True).start()
            begin: Begin | None = None
            end: End | None = None
            try:
                while True:
                    item = await queue.get()
                    if item is done:
                        break
                    if isinstance(item, BaseException):
                        raise item
                    if isinstance(item, Begin):
                        begin = item
                        await self._say(session.id, customization_line(item.bdc), thought=True)
                    elif isinstance(item, Delta):
                        await self._say(session.id, item.text)
                    elif isinstance(item, End):
                        end = item
            finally:
                cancel.cancel()  # no-op after a normal end; stops the thread if we are torn down mid-answer
                if end is None:  # wait for the thread so the model is free before the next prompt takes it
                    while (await queue.get()) is not done:
                        pass
        session.history.append(text)
        bdc = dict(begin.bdc) if begin else {}
        if end is not None:
            bdc.update(end.bdc)
            bdc["finish"] = end.finish_reason
        reason = "end_turn"
        if end is not None and end.finish_reason == "cancelled":
            reason = "cancelled"
        elif end is not None and end.finish_reason == "length":
            reason = "max_tokens"
        return PromptResponse(stop_reason=reason, field_meta={"bdc": bdc})

    # ---- deep mode -------------------------------------------------------------------------------------

    async def _permission(self, session: _Session, urls: list[str], run_id: str) -> str:
        """Consent per :mod:`bdc_assistant.deep.consent`: recorded → go; else ask the client; returns how."""
        from acp.schema import AllowedOutcome, PermissionOption, ToolCallUpdate

        from ..deep.consent import consent_text, has_consent, hosts, record_consent
        from ..store.runs import RunStore

        store = RunStore()
        try:
            if has_consent(store, urls, run_id):
                return "recorded"
            from acp import text_block, tool_content

            response = await self._conn.request_permission(
                session_id=session.id,
                tool_call=ToolCallUpdate(
                    tool_call_id=f"deep-consent-{run_id}",
                    title="Deep mode: send this problem to " + ", ".join(hosts(urls)),
                    kind="fetch",
                    status="pending",
                    content=[tool_content(text_block(consent_text(urls)))],
                ),
                options=[
                    PermissionOption(option_id=ALLOW_ONCE, name="Send, for this problem", kind="allow_once"),
                    PermissionOption(
                        option_id=ALLOW_ALWAYS, name="Always allow these hosts", kind="allow_always"
                    ),
                    PermissionOption(
                        option_id=REJECT, name="Do not send (answer locally)", kind="reject_once"
                    ),
                ],
            )
            outcome = response.outcome
            choice = outcome.option_id if isinstance(outcome, AllowedOutcome) else None
            if choice == ALLOW_ALWAYS:
                record_consent(store, urls, scope="always")
            elif choice == ALLOW_ONCE:
                record_consent(store, urls, scope="run", run_id=run_id)
            else:
                return "declined"
            return choice
        finally:
            store.close()

    async def _deep(self, session: _Session, text: str, cancel: CancelToken) -> Any:
        from acp import PromptResponse

        from ..store.runs import new_run_id

        agents = self._deep_agents()
        if not agents:
            await self._say(
                session.id, "Deep mode has no agents configured (deep.agents); answering locally.\n\n"
            )
            return await self._local(session, text, cancel)
        run_id = new_run_id()
        how = await self._permission(session, [a.base_url for a in agents], run_id)
        if how == "declined":
            await self._say(
                session.id,
                "Deep mode was not started: consent was declined, and nothing was sent. Answering locally.\n\n",
            )
            return await self._local(session, text, cancel)
        if cancel.cancelled:
            return PromptResponse(stop_reason="cancelled")
        loop = asyncio.get_running_loop()

        def note(line: str) -> None:
            loop.call_soon_threadsafe(
                asyncio.ensure_future, self._say(session.id, line.rstrip("\n") + "\n", thought=True)
            )

        result = await loop.run_in_executor(None, self._run_deep, text, agents, run_id, cancel, note)
        if result.best_code:
            await self._say(
                session.id,
                f"## Deep-mode solution\npublic tests passed: {result.public_pass_rate:.0%} after {result.calls} "
                f"LLM calls (stopped by {result.stopped_by}; run {result.run_id})\n\n```python\n"
                f"{result.best_code.rstrip()}\n```\n",
            )
        else:
            await self._say(session.id, f"Deep mode found no program (stopped by {result.stopped_by}).")
        meta = {"deep": {k: v for k, v in result.as_json().items() if k != "best_code"}, "consent": how}
        return PromptResponse(stop_reason="cancelled" if cancel.cancelled else "end_turn", field_meta=meta)

    def _run_deep(
        self, text: str, agents: list[Any], run_id: str, cancel: CancelToken, note: Callable[[str], None]
    ) -> Any:
        import hashlib

        from ..deep.problem_tests import statement_examples
        from ..deep.progress import Progress
        from ..deep.runner import DeepRunner
        from ..types import Problem

        class _Lines:
            def write(self, s: str) -> None:
                if s.strip():
                    note(s)

            def flush(self) -> None:
                pass

        public = tuple(statement_examples(text))
        problem = Problem(
            id="acp-" + hashlib.sha256(text.encode()).hexdigest()[:10],
            statement=text,
            public_tests=public,
            kind="call" if public and all(t.kind == "call" for t in public) else "stdio",
            source="acp",
        )
        runner = (
            self._deep_runner_factory()
            if self._deep_runner_factory
            else DeepRunner(settings=self.settings.deep)
        )
        try:
            return runner.run(problem, agents, on_event=Progress(_Lines()), cancel=cancel, run_id=run_id)  # type: ignore[arg-type]
        finally:
            store = getattr(runner, "store", None)
            if store is not None and self._deep_runner_factory is None:
                store.close()
