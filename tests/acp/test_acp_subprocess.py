"""`bdc acp` as an editor runs it: a subprocess speaking raw JSON-RPC (one JSON object per line) over a pipe,
on the real embedded gemma-3-270m with a random bundle. Every stdout line must be a protocol message."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serve.conftest import REPO, child_env

pytestmark = pytest.mark.slow

STUB = 'def add(a, b):\n    """Return the sum of a and b."""\n'


class PipeClient:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.bad_lines: list[bytes] = []
        self.stderr: list[str] = []
        self._id = 0
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.inbox.put(json.loads(line))
            except ValueError:
                self.bad_lines.append(line)

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.decode(errors="replace").rstrip())

    def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"jsonrpc": "2.0", **obj}) + "\n").encode())
        self.proc.stdin.flush()

    def request(self, method: str, params: dict[str, Any]) -> int:
        self._id += 1
        self.send({"id": self._id, "method": method, "params": params})
        return self._id

    def wait_for(
        self, rid: int, timeout: float = 300.0, on_note: Any = None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The response to request ``rid`` and the notifications that came before it."""
        notes: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self.inbox.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("no response from bdc acp:\n" + "\n".join(self.stderr[-20:])) from None
            if msg.get("id") == rid and "method" not in msg:
                return msg, notes
            notes.append(msg)
            if on_note is not None:
                on_note(msg)


def chunks(notes: list[dict[str, Any]], kind: str = "agent_message_chunk") -> str:
    return "".join(
        n["params"]["update"]["content"]["text"]
        for n in notes
        if n.get("method") == "session/update" and n["params"]["update"]["sessionUpdate"] == kind
    )


@pytest.fixture(scope="module")
def agent(
    gemma_gguf: Path, gemma_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PipeClient]:
    env = child_env(tmp_path_factory.mktemp("acp_home"), gemma_gguf)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bdc_assistant", "acp", "--bundle", str(gemma_bundle), "--max-tokens", "96"],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    client = PipeClient(proc)
    try:
        yield client
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def session_id(agent: PipeClient) -> str:
    resp, _ = agent.wait_for(agent.request("initialize", {"protocolVersion": 1, "clientCapabilities": {}}))
    assert resp["result"]["protocolVersion"] == 1
    assert resp["result"]["agentInfo"]["name"] == "bdc-assistant"
    resp, _ = agent.wait_for(agent.request("session/new", {"cwd": str(REPO), "mcpServers": []}))
    modes = resp["result"]["modes"]
    assert modes["currentModeId"] == "local" and [m["id"] for m in modes["availableModes"]] == ["local"]
    return str(resp["result"]["sessionId"])


def test_prompt_streams_plan_and_code(agent: PipeClient, session_id: str) -> None:
    rid = agent.request(
        "session/prompt", {"sessionId": session_id, "prompt": [{"type": "text", "text": STUB}]}
    )
    resp, notes = agent.wait_for(rid)
    assert resp["result"]["stopReason"] == "end_turn", resp
    text = chunks(notes)
    assert text.startswith("## Plan\n1.") and "## Solution\n```python\ndef add(a, b):" in text
    assert len([n for n in notes if n["params"]["update"]["sessionUpdate"] == "agent_message_chunk"]) > 5
    assert "experts:" in chunks(notes, "agent_thought_chunk")
    bdc = resp["result"]["_meta"]["bdc"]
    assert bdc["customized"] is True and bdc["gates_summary"]["layers"] == 18
    assert agent.bad_lines == []  # nothing but JSON-RPC on stdout


def test_cancel_stops_the_prompt(agent: PipeClient, session_id: str) -> None:
    sent: dict[str, float] = {}
    seen = [0]

    def cancel_on_third_chunk(msg: dict[str, Any]) -> None:
        # The first chunk ("## Plan\n1.") is sent before the prompt is evaluated; by the third, tokens flow.
        update = msg.get("params", {}).get("update", {})
        if update.get("sessionUpdate") == "agent_message_chunk":
            seen[0] += 1
            if seen[0] == 3:
                agent.send({"method": "session/cancel", "params": {"sessionId": session_id}})
                sent["t"] = time.monotonic()

    problem = (
        "Write a Python program that reads a list of integers and prints the longest increasing subsequence."
    )
    rid = agent.request(
        "session/prompt", {"sessionId": session_id, "prompt": [{"type": "text", "text": problem}]}
    )
    resp, _ = agent.wait_for(rid, on_note=cancel_on_third_chunk)
    assert sent, "no chunk arrived before the answer ended"
    assert resp["result"]["stopReason"] == "cancelled", resp
    assert time.monotonic() - sent["t"] < 1.0
    assert agent.bad_lines == []


def test_unknown_session_is_an_error_and_stdin_eof_exits(agent: PipeClient, session_id: str) -> None:
    resp, _ = agent.wait_for(
        agent.request("session/prompt", {"sessionId": "nope", "prompt": [{"type": "text", "text": "x"}]})
    )
    assert resp["error"]["code"] == -32602
    assert agent.proc.stdin is not None
    agent.proc.stdin.close()
    assert agent.proc.wait(30) == 0
    assert agent.bad_lines == []
