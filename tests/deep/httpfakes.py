"""Real HTTP servers on 127.0.0.1 that speak the OpenAI chat-completions and Anthropic Messages subsets
deep mode uses, with scripted answers and injectable failures (429, 500, slow replies, malformed JSON).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[str, list[dict[str, str]]], str]


@dataclass
class Script:
    responder: Responder
    failures: list[str] = field(
        default_factory=list
    )  # consumed one per request: "429" "500" "slow" "malformed" "401"
    slow_s: float = 3.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    delay_s: float = 0.0


class _Handler(BaseHTTPRequestHandler):
    script: Script

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        s = self.script
        with s.lock:
            s.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            failure = s.failures.pop(0) if s.failures else ""
        if s.delay_s:
            time.sleep(s.delay_s)
        if failure == "429":
            self._send(
                429, b'{"error": {"message": "rate limited", "type": "rate_limit"}}', {"retry-after": "0"}
            )
            return
        if failure == "500":
            self._send(500, b'{"error": {"message": "boom", "type": "server_error"}}')
            return
        if failure == "401":
            self._send(401, b'{"error": {"message": "bad key", "type": "authentication_error"}}')
            return
        if failure == "slow":
            time.sleep(s.slow_s)
        if failure == "malformed":
            self._send(200, b'{"choices": [ this is not json')
            return
        if self.path.endswith("/chat/completions"):
            self._openai(body)
        elif self.path.endswith("/completions"):
            self._completion(body)
        elif self.path.endswith("/messages"):
            self._anthropic(body)
        else:
            self._send(404, b'{"error": {"message": "not found"}}')

    def _openai(self, body: dict[str, Any]) -> None:
        text = self.script.responder(body["model"], body["messages"])
        prompt_len = sum(len(m["content"]) for m in body["messages"]) // 4 + 5
        out_len = min(len(text) // 4 + 1, int(body.get("max_tokens") or 10**9))
        resp = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "system_fingerprint": "fp_test",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": prompt_len,
                "completion_tokens": out_len,
                "total_tokens": prompt_len + out_len,
            },
        }
        self._send(200, json.dumps(resp).encode())

    def _completion(self, body: dict[str, Any]) -> None:
        text = self.script.responder(body["model"], [{"role": "prompt", "content": body["prompt"]}])
        for stop in body.get("stop") or []:
            if stop in text:
                text = text[: text.index(stop)]
        resp = {
            "id": "cmpl-1",
            "object": "text_completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
            "usage": {
                "prompt_tokens": len(body["prompt"]) // 4 + 1,
                "completion_tokens": len(text) // 4 + 1,
                "total_tokens": len(body["prompt"]) // 4 + len(text) // 4 + 2,
            },
        }
        self._send(200, json.dumps(resp).encode())

    def _anthropic(self, body: dict[str, Any]) -> None:
        messages = list(body["messages"])
        if body.get("system"):
            messages = [{"role": "system", "content": body["system"]}, *messages]
        text = self.script.responder(body["model"], messages)
        prompt_len = sum(len(m["content"]) for m in messages) // 4 + 5
        resp = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": prompt_len,
                "output_tokens": min(len(text) // 4 + 1, body["max_tokens"]),
            },
        }
        self._send(200, json.dumps(resp).encode())


class FakeLLMServer:
    def __init__(self, script: Script) -> None:
        handler = type("H", (_Handler,), {"script": script})
        self.script = script
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeLLMServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---- a deterministic "model" for an add-two-numbers problem ------------------------------------------

GOOD = "a, b = map(int, input().split())\nprint(a + b)\n"
BAD = "a, b = map(int, input().split())\nprint(a - b)\n"
HALF = "a, b = map(int, input().split())\nprint(a + b if a < 5 else 0)\n"


def adder_responder(model: str, messages: list[dict[str, str]]) -> str:
    """Proposes thoughts; writes GOOD code when the plan mentions 'sum', BAD when it mentions 'subtract',
    HALF otherwise (also for the direct solve). Summaries and regenerations are canned."""
    user = messages[-1]["content"]
    if "Propose" in user:
        depth = user.count("Step ") - user.count("Step $")  # steps already in the plan appear as "Step i:"
        if model.endswith("b"):
            return json.dumps(
                [
                    {"thought": f"use the sum of a and b (d{depth})", "reasonableness": 0.4},
                    {"thought": f"handle small numbers (d{depth})", "reasonableness": 0.6},
                ]
            )
        return (
            "```json\n"
            + json.dumps(
                [
                    {"thought": f"subtract the numbers (d{depth})", "reasonableness": 0.9},
                    {"thought": f"handle small numbers first (d{depth})", "reasonableness": 0.1},
                ]
            )
            + "\n```"
        )
    if "Write the complete Python 3 program" in user:
        plan = user.split("Follow this plan:")[-1]
        if "sum" in plan:
            return "Here you go:\n```python\n" + GOOD + "```"
        if "subtract" in plan:
            return "```python\n" + BAD + "```"
        return "```python\n" + HALF + "```"
    if "explain what is wrong" in user:
        return "The program subtracts instead of adding; step 1 is wrong."
    if "Write a better replacement" in user:
        return "New step: compute the sum of a and b and print it."
    if "test cases" in user:
        return json.dumps([{"input": "7 8\n", "output": "15\n"}])
    return "?"


def grower_responder(model: str, messages: list[dict[str, str]]) -> str:
    """Never solves the adder: subtract-plans give BAD (pruned after a failed refine), others HALF."""
    user = messages[-1]["content"]
    depth = user.count("\nStep ")
    if "Propose" in user:
        if model.endswith("a"):
            return json.dumps(
                [
                    {"thought": f"subtract them at depth {depth}", "reasonableness": 0.7},
                    {"thought": f"handle small values at depth {depth}", "reasonableness": 0.3},
                ]
            )
        return json.dumps(
            [
                {"thought": f"check the input format at depth {depth}", "reasonableness": 0.5},
                {"thought": f"print the result at depth {depth}", "reasonableness": 0.5},
            ]
        )
    if "Write a better replacement" in user:
        return "subtract them once more"
    if "explain what is wrong" in user:
        return "The output is the difference, not the sum."
    plan = user.split("Follow this plan:")[-1]
    return "```python\n" + (BAD if "subtract" in plan else HALF) + "```"


def completion_responder(model: str, messages: list[dict[str, str]]) -> str:
    """A base model on /v1/completions: continues plans, writes code after the ```python fence."""
    prompt = messages[-1]["content"]
    if prompt.endswith("```python\n"):
        plan = prompt.rsplit("### Plan", 1)[-1].lower()
        body = GOOD if "sum" in plan else BAD if "subtract" in plan else HALF
        return body + "```\n\n### Problem\nmore"
    if prompt.endswith("because"):
        return " it subtracts.\n\nmore"
    if "### Better plan" in prompt:
        return " Print the sum of a and b.\n2. more"
    return " Subtract b from a.\n2. Print it."
