"""`bdc acp` in process: the SDK's own client side talks to BdcAcpAgent over a socket pair.

Scripted generators stand in for the model; deep mode runs the real DeepRunner against a fake
OpenAI-compatible server on 127.0.0.1, whose request log proves what was (not) sent before consent.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bdc_assistant.config import DeepSettings, load_settings
from tests.deep.fakes import TableEvaluator
from tests.deep.httpfakes import FakeLLMServer, Script, adder_responder
from tests.serve.fakes import THOUGHT, EndlessGenerator, StageGenerator, TextCustomizer, make_solver

acp = pytest.importorskip("acp")

from acp import PROTOCOL_VERSION, RequestError, text_block  # noqa: E402
from acp.core import AgentSideConnection, ClientSideConnection  # noqa: E402
from acp.schema import AllowedOutcome, DeniedOutcome, RequestPermissionResponse  # noqa: E402

from bdc_assistant.acp_agent.agent import BdcAcpAgent  # noqa: E402

ADD = "Read a and b, print a+b.\n\nExamples\nInput\n1 2\nOutput\n3\n"


class RecordingClient:
    """The editor side: records every update; answers permission requests from a script."""

    def __init__(self, answers: list[str | None] | None = None) -> None:
        self.updates: list[Any] = []
        self.permission_requests: list[Any] = []
        self.answers = list(answers or [])

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        self.updates.append(update)

    async def request_permission(
        self, options: list[Any], session_id: str, tool_call: Any, **kwargs: Any
    ) -> Any:
        self.permission_requests.append((tool_call, options))
        choice = self.answers.pop(0) if self.answers else None
        if choice is None:
            return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))
        return RequestPermissionResponse(outcome=AllowedOutcome(option_id=choice, outcome="selected"))

    def text(self, kind: str = "agent_message_chunk") -> str:
        return "".join(u.content.text for u in self.updates if u.session_update == kind)


def run_pair(
    agent: BdcAcpAgent, client: RecordingClient, body: Callable[[ClientSideConnection], Awaitable[Any]]
) -> Any:
    async def main() -> Any:
        a, b = socket.socketpair()
        agent_reader, agent_writer = await asyncio.open_connection(sock=a)
        client_reader, client_writer = await asyncio.open_connection(sock=b)
        agent_side = AgentSideConnection(agent, agent_writer, agent_reader)
        client_side = ClientSideConnection(client, client_writer, client_reader)
        try:
            return await asyncio.wait_for(body(client_side), 60)
        finally:
            await client_side.close()
            await agent_side.close()
            agent.close()

    return asyncio.run(main())


async def _session(conn: ClientSideConnection) -> Any:
    init = await conn.initialize(protocol_version=PROTOCOL_VERSION)
    assert init.agent_info is not None and init.agent_info.name == "bdc-assistant"
    return await conn.new_session(cwd="/tmp", mcp_servers=[])


def test_prompt_streams_the_plan_and_the_code_as_message_chunks() -> None:
    gen = StageGenerator()
    agent = BdcAcpAgent(load_settings(), solver_factory=lambda: make_solver(gen, TextCustomizer()))
    client = RecordingClient()

    async def body(conn: ClientSideConnection) -> Any:
        session = await _session(conn)
        assert session.modes is not None and [m.id for m in session.modes.available_modes] == ["local"]
        return await conn.prompt(session_id=session.session_id, prompt=[text_block("Write add(a, b).")])

    resp = run_pair(agent, client, body)
    assert resp.stop_reason == "end_turn"
    assert (
        client.text()
        == "## Plan\n1."
        + THOUGHT.rstrip("\n")
        + "\n\n## Solution\n```python\ndef add(a, b):\n    return a + b\n```\n"
    )
    assert (
        len([u for u in client.updates if u.session_update == "agent_message_chunk"]) > 5
    )  # streamed, not one blob
    thought = client.text("agent_thought_chunk")
    assert "bundle fake-bundle" in thought and "io " in thought and "math " in thought
    bdc = resp.field_meta["bdc"]
    assert bdc["customized"] is True and bdc["gates_summary"]["layers"] == 2 and bdc["finish"] == "stop"
    assert gen.customizations[-1].gates == TextCustomizer().for_query("Write add(a, b).").gates


def test_cancel_stops_generation_and_answers_cancelled() -> None:
    gen = EndlessGenerator(delay_s=0.02)
    agent = BdcAcpAgent(load_settings(), solver_factory=lambda: make_solver(gen, TextCustomizer()))
    client = RecordingClient()

    async def body(conn: ClientSideConnection) -> Any:
        session = await _session(conn)
        task = asyncio.ensure_future(conn.prompt(session_id=session.session_id, prompt=[text_block("count")]))
        while gen.produced < 5:
            await asyncio.sleep(0.01)
        await conn.cancel(session_id=session.session_id)
        sent = time.monotonic()
        resp = await task
        return resp, sent

    resp, sent = run_pair(agent, client, body)
    assert resp.stop_reason == "cancelled"
    assert not gen.running and gen.stopped_at - sent < 1.0


def test_deep_mode_is_not_offered_without_agents() -> None:
    agent = BdcAcpAgent(load_settings(), solver_factory=lambda: make_solver(StageGenerator(), None))

    async def body(conn: ClientSideConnection) -> Any:
        session = await _session(conn)
        with pytest.raises(RequestError):
            await conn.set_session_mode(session_id=session.session_id, mode_id="deep")
        return session

    session = run_pair(agent, RecordingClient(), body)
    assert [m.id for m in session.modes.available_modes] == ["local"]


def _deep_agent(url: str, gen: Any) -> BdcAcpAgent:
    from bdc_assistant.deep.runner import DeepRunner

    settings = load_settings()
    deep = DeepSettings(agents=[f"openai:{url}:model-a", f"openai:{url}:model-b"], max_calls=6, rollouts=2)
    settings = settings.model_copy(update={"deep": deep})
    return BdcAcpAgent(
        settings,
        solver_factory=lambda: make_solver(gen, None, note="plain base"),
        deep_runner_factory=lambda: DeepRunner(
            settings=deep,
            evaluator_factory=lambda p: TableEvaluator(),
            key_lookup=lambda name: None,
            sleep=lambda s: None,
        ),
    )


def _deep_prompt(
    answers: list[str | None], prompts: int = 1
) -> tuple[RecordingClient, list[Any], FakeLLMServer]:
    with FakeLLMServer(Script(adder_responder)) as server:
        agent = _deep_agent(server.url, StageGenerator())
        client = RecordingClient(answers)

        async def body(conn: ClientSideConnection) -> Any:
            session = await _session(conn)
            assert [m.id for m in session.modes.available_modes] == ["local", "deep"]
            await conn.set_session_mode(session_id=session.session_id, mode_id="deep")
            return [
                await conn.prompt(session_id=session.session_id, prompt=[text_block(ADD)])
                for _ in range(prompts)
            ]

        responses = run_pair(agent, client, body)
    return client, responses, server


def _consents() -> list[dict[str, Any]]:
    from bdc_assistant.store.runs import RunStore

    store = RunStore()
    try:
        return list(store.consents())
    finally:
        store.close()


def test_deep_mode_declined_sends_nothing_and_answers_locally() -> None:
    client, responses, server = _deep_prompt([None])
    assert len(client.permission_requests) == 1
    tool_call, options = client.permission_requests[0]
    assert "127.0.0.1" in tool_call.title and "Recipients" in tool_call.content[0].content.text
    assert {o.kind for o in options} == {"allow_once", "allow_always", "reject_once"}
    assert server.script.requests == []  # nothing left the machine
    assert _consents() == []
    assert "consent was declined, and nothing was sent" in client.text()
    assert "```python\ndef add(a, b):" in client.text()  # the local answer
    assert responses[0].stop_reason == "end_turn"


def test_deep_mode_allowed_once_runs_and_asks_again_next_time() -> None:
    client, responses, server = _deep_prompt(["allow_once", None], prompts=2)
    assert len(client.permission_requests) == 2  # a one-run consent does not cover the next problem
    assert server.script.requests  # the first run talked to the agents
    assert "## Deep-mode solution" in client.text()
    assert responses[0].field_meta["consent"] == "allow_once"
    assert responses[0].field_meta["deep"]["calls"] > 0
    consents = _consents()
    assert [c["scope"] for c in consents] == ["run"] and consents[0]["run_id"] == responses[0].field_meta[
        "deep"
    ]["run_id"]


def test_deep_mode_allowed_always_is_not_asked_again() -> None:
    client, responses, server = _deep_prompt(["allow_always"], prompts=2)
    assert len(client.permission_requests) == 1
    assert [r.field_meta["consent"] for r in responses] == ["allow_always", "recorded"]
    assert [c["scope"] for c in _consents()] == ["always"]
    assert {r["body"]["model"] for r in server.script.requests} == {"model-a", "model-b"}
    progress = client.text("agent_thought_chunk")  # the deep run's progress, streamed as thoughts
    assert "direct solve: public PR" in progress and "stopped by max_calls" in progress
