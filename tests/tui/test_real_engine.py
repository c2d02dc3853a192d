"""``RealEngine`` (the TUI's adapter) against the real solver session, consent store, key lookup, bundle
registry and sandbox. The tests whose names say "scripted generator" answer with tests/fakes.py's
``FakeGenerator`` inside the real solver session; only the slow test answers with the embedded model
through llama.cpp, end to end in the app."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
from typing import Any

import pytest

from bdc_assistant.config import load_settings
from bdc_assistant.solver.session import Solver
from bdc_assistant.store.history import open_history
from bdc_assistant.tui.app import BdcApp
from bdc_assistant.tui.real_engine import RealEngine
from bdc_assistant.tui.widgets import ProblemEditor
from bdc_assistant.types import Status, TestCase
from tests.fakes import FakeGenerator
from tests.tui.test_app import wait_until

PLAN = " Read a and b.\n2. Print a + b.\n"
CODE = "a, b = map(int, input().split())\nprint(a + b)\n```\nchatter"


def engine_with_a_scripted_generator() -> RealEngine:
    settings = load_settings()
    engine = RealEngine(settings)
    engine._solver = Solver(settings, FakeGenerator([PLAN, CODE]), "completion")
    return engine


def test_solver_session_with_a_scripted_generator_streams_into_the_app() -> None:
    engine = engine_with_a_scripted_generator()
    app = BdcApp(engine.settings, engine, open_history())

    async def main() -> None:
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_until(pilot, lambda: app.chat.info.state == "ready")
            assert (app.chat.info.backend, app.chat.info.model) == ("fake", "fake-model")
            app.main.query_one(ProblemEditor).text = "Read two ints and print the sum."
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.chat.current is None and app.chat.answers)

    asyncio.run(main())
    answer = app.chat.answers[-1]
    assert answer.code == "a, b = map(int, input().split())\nprint(a + b)\n"
    assert app.chat.blocks[-1].source == answer.code
    assert "Print a + b." in answer.thought


def test_refused_consent_sends_and_records_nothing_with_a_scripted_generator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts: list[Any] = []

    def guard(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise AssertionError(f"network connection attempted to {address!r}")

    monkeypatch.setattr(socket.socket, "connect", guard)
    monkeypatch.setattr(socket.socket, "connect_ex", guard)
    engine = engine_with_a_scripted_generator()
    app = BdcApp(engine.settings, engine, open_history(), warm_up=False)

    async def main() -> None:
        async with app.run_test(size=(120, 36)) as pilot:
            app.chat.problem = "Read two ints and print the sum.\n\nInput\n1 2\n\nOutput\n3\n"
            await pilot.press("ctrl+d")
            await wait_until(pilot, lambda: type(app.screen).__name__ == "ConsentDialog")
            body = str(app.screen.query_one("#consent-body").render())
            assert "api.openai.com" in body  # the recipients are named
            await pilot.click("#refuse")
            await wait_until(pilot, lambda: type(app.screen).__name__ == "DeepScreen")
            await pilot.press("ctrl+g")
            await pilot.pause(0.2)

    asyncio.run(main())
    assert attempts == []
    assert not engine.has_consent(("openai::gpt-4o-mini",))


def test_consent_store_keys_presets_and_retrain_status(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = RealEngine(load_settings())
    agents = ("anthropic::claude-3-5-haiku-latest",)
    assert {"openai", "anthropic"} <= {p.name for p in engine.deep_providers()}
    assert "api.anthropic.com" in engine.consent_text(agents)
    assert not engine.has_consent(agents)
    engine.record_consent(agents)
    assert engine.has_consent(agents)
    assert not engine.has_consent(("openai::gpt-4o-mini",))  # a new host asks again
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    assert engine.key_source("openai") is None
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-123456")
    assert engine.key_source("openai") == "OPENAI_API_KEY"
    status = engine.retrain_status()
    assert status.trajectories == 0 and status.new_since_active == 0
    argv = engine.retrain_command(force=True)
    assert argv[-3:] == ["retrain", "--json", "--force"]


def test_sandbox_runs_the_answer_on_tests() -> None:
    engine = RealEngine(load_settings())
    code = "a, b = map(int, input().split())\nprint(a + b)\n"
    verdicts = engine.run_tests(code, [TestCase("1 2\n", "3\n"), TestCase("2 2\n", "5\n")])
    engine.close()
    assert [v.status for v in verdicts] == [Status.PASS, Status.WRONG]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python not installed")
def test_embedded_model_answers_in_the_app_end_to_end(embedded_base_gguf: Any) -> None:
    settings = load_settings(solver={"thought_tokens": 24, "max_tokens": 48})
    engine = RealEngine(settings)
    app = BdcApp(settings, engine, open_history())

    async def main() -> None:
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_until(pilot, lambda: app.chat.info.state != "warming", timeout=180)
            assert app.chat.info.state == "ready", app.chat.info.detail
            assert app.chat.info.backend == "llamacpp"
            app.main.query_one(ProblemEditor).text = "Write a Python function add(a, b) that returns a + b."
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.chat.current is None and app.chat.answers, timeout=300)

    try:
        asyncio.run(main())
    finally:
        engine.close()
    answer = app.chat.answers[-1]
    assert not answer.cancelled and answer.tokens > 0 and answer.tokens_per_s > 0
    assert app.chat.tokens_per_s == answer.tokens_per_s
