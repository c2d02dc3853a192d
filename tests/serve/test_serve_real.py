"""Acceptance: `bdc serve` (a real uvicorn on 127.0.0.1, a free port) on the real embedded gemma-3-270m with a
random K=3 bundle, driven by the official `openai` client and by the requests `llm` and Continue make."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest

from .conftest import REPO, Served
from .http import Stream, one_sentence, request

openai = pytest.importorskip("openai")
yaml = pytest.importorskip("yaml")

pytestmark = pytest.mark.slow

STUB = 'def add(a, b):\n    """Return the sum of a and b."""\n'
WORDS = "Read a line of text and print how many words it has."
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"  # a base model keeps counting: a long generation


def client(served: Served, key: str = "unused") -> Any:
    return openai.OpenAI(base_url=served.v1, api_key=key, max_retries=0, timeout=300)


def status(served: Served) -> dict[str, Any]:
    return request(served.base, "GET", "/bdc/status")[2]


def wait_idle(served: Served, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while status(served)["pending"]:
        assert time.monotonic() < deadline, status(served)
        time.sleep(0.05)


def code_block(text: str) -> str:
    m = re.search(r"```python\n(.*?)(?:```|\Z)", text, re.S)
    return m.group(1) if m else ""


def test_chat_non_streaming_answers_with_code_and_gates(real_server: Served) -> None:
    r = client(real_server).chat.completions.create(
        model="bdc", messages=[{"role": "user", "content": STUB}], max_tokens=120
    )
    content = r.choices[0].message.content
    code = code_block(content)
    assert content.startswith("## Plan\n1.") and "## Solution" in content
    assert code.startswith("def add(a, b):") and len(code.strip()) > len(
        STUB.strip()
    )  # the model wrote a body
    bdc = r.bdc
    assert bdc["customized"] is True and bdc["backend"] == "llamacpp" and "gemma" in bdc["base_model"]
    assert bdc["mixture"] == "exact"
    assert bdc["gates_summary"]["layers"] == 18 and bdc["gates_summary"]["experts"] == 3
    assert len(bdc["experts"]) == 3 and sum(e["share"] for e in bdc["experts"]) == pytest.approx(1, abs=1e-3)
    assert r.usage.completion_tokens > 0


def test_chat_streaming_answers_with_code(real_server: Served) -> None:
    chunks = list(
        client(real_server).chat.completions.create(
            model="bdc", messages=[{"role": "user", "content": STUB}], max_tokens=120, stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert code_block(text).startswith("def add(a, b):") and len(code_block(text).strip()) > len(STUB.strip())
    assert chunks[0].bdc["gates_summary"]["sha256_16"]
    assert chunks[-1].choices[0].finish_reason in ("stop", "length") and chunks[-1].bdc["tokens"] > 0


def test_two_problems_get_different_gates(real_server: Served) -> None:
    c = client(real_server)
    a = c.chat.completions.create(model="bdc", messages=[{"role": "user", "content": STUB}], max_tokens=1)
    b = c.chat.completions.create(model="bdc", messages=[{"role": "user", "content": WORDS}], max_tokens=1)
    ga, gb = a.bdc["gates_summary"], b.bdc["gates_summary"]
    assert ga["sha256_16"] != gb["sha256_16"]
    diff = max(
        abs(x - y)
        for ra, rb in zip(ga["per_layer"], gb["per_layer"], strict=True)
        for x, y in zip(ra, rb, strict=True)
    )
    assert diff > 1e-3, (ga, gb)


def test_completions_plain_and_streamed(real_server: Served) -> None:
    c = client(real_server)
    r = c.completions.create(model="bdc", prompt=STUB, max_tokens=24)
    assert r.choices[0].text.strip() and r.bdc["customized"] is True
    pieces = list(c.completions.create(model="bdc", prompt=COUNTING, max_tokens=8, stream=True))
    assert "".join(p.choices[0].text for p in pieces).strip()
    assert pieces[0].bdc["gates_summary"]["layers"] == 18
    assert pieces[-1].choices[0].finish_reason == "length" and pieces[-1].bdc["tokens"] == 8


def test_malformed_request_is_400_with_one_sentence(real_server: Served) -> None:
    code, _, out = request(real_server.base, "POST", "/v1/chat/completions", b'{"messages": [')
    assert code == 400 and one_sentence(out["error"]["message"]), out
    code, _, out = request(real_server.base, "POST", "/v1/completions", {"prompt": "x", "max_tokens": -1})
    assert code == 400 and one_sentence(out["error"]["message"]), out


def test_beyond_the_queue_bound_is_503(real_server: Served) -> None:
    wait_idle(real_server)
    a = Stream(real_server.base, "/v1/completions", {"prompt": COUNTING, "max_tokens": 2000, "stream": True})
    assert a.status == 200 and a.events(2)
    got: dict[str, Any] = {}
    b = threading.Thread(
        target=lambda: got.update(
            r=request(real_server.base, "POST", "/v1/completions", {"prompt": STUB, "max_tokens": 2})
        )
    )
    b.start()
    deadline = time.monotonic() + 30
    while status(real_server)["waiting"] != 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    code, headers, out = request(
        real_server.base, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": WORDS}]}
    )
    assert code == 503 and headers["retry-after"] == "1" and one_sentence(out["error"]["message"]), out
    a.close()
    b.join(120)
    assert got["r"][0] == 200
    wait_idle(real_server)


def test_client_disconnect_stops_generation_within_a_second(real_server: Served) -> None:
    wait_idle(real_server)
    s = Stream(real_server.base, "/v1/completions", {"prompt": COUNTING, "max_tokens": 2000, "stream": True})
    assert s.status == 200 and len(s.events(6)) == 6
    assert status(real_server)["instances"][0]["busy"] is True
    closed = s.close()
    while status(real_server)["instances"][0]["busy"]:
        assert time.monotonic() - closed < 5, "generation did not stop"
        time.sleep(0.02)
    stopped = time.monotonic() - closed
    inst = status(real_server)["instances"][0]
    assert stopped < 1.0, f"generation stopped {stopped:.2f} s after the disconnect"
    assert inst["last_finish"] == "cancelled"
    tokens = inst["tokens"]
    time.sleep(0.3)
    assert status(real_server)["instances"][0]["tokens"] == tokens


def _doc_yaml(marker: str) -> Any:
    """A YAML block of docs/serve.md (the one whose first line is ``marker``)."""
    text = (REPO / "docs" / "serve.md").read_text(encoding="utf-8")
    for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
        if block.startswith(marker):
            return yaml.safe_load(block)
    raise AssertionError(f"no yaml block starting with {marker!r} in docs/serve.md")


def _with_port(url: str, port: int) -> str:
    return url.replace("127.0.0.1:8000", f"127.0.0.1:{port}")


def test_llm_extra_openai_models_config_works(real_server: Served) -> None:
    entry = _doc_yaml("# extra-openai-models.yaml")[0]
    # As llm's OpenAI plugin does for an extra model with api_base and no api_key_name:
    llm_client = openai.OpenAI(base_url=_with_port(entry["api_base"], real_server.port), api_key="DUMMY_KEY")
    stream = llm_client.chat.completions.create(
        model=entry["model_name"] or entry["model_id"],
        messages=[{"role": "user", "content": STUB}],
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=120,
    )
    text, usage = "", None
    for chunk in stream:
        usage = chunk.usage or usage
        if chunk.choices and chunk.choices[0].delta.content is not None:
            text += chunk.choices[0].delta.content
    assert code_block(text).startswith("def add(a, b):")
    assert usage is not None and usage.completion_tokens > 0


def test_continue_openai_provider_config_works(real_server: Served) -> None:
    model = _doc_yaml("# ~/.continue/config.yaml")["models"][0]
    assert model["provider"] == "openai"
    # As Continue's OpenAI provider does: POST new URL("chat/completions", apiBase), SSE, delta.content.
    url = urljoin(_with_port(model["apiBase"], real_server.port), "chat/completions")
    body = {
        "messages": [
            {"role": "system", "content": "You are a coding assistant."},
            {"role": "user", "content": STUB},
        ],
        "model": model["model"],
        "max_tokens": 120,
        "stream": True,
    }
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {model.get('apiKey')}",
            "api-key": "",
        },
    )
    text = ""
    with urllib.request.urlopen(req, timeout=300) as resp:
        for raw in resp:
            line = raw.decode().strip()
            if line.startswith("data: ") and line != "data: [DONE]":
                delta = json.loads(line[6:])["choices"][0]["delta"]
                text += delta.get("content") or ""
    assert code_block(text).startswith("def add(a, b):")
    with urllib.request.urlopen(
        urljoin(_with_port(model["apiBase"], real_server.port), "models"), timeout=30
    ) as resp:
        assert [m["id"] for m in json.load(resp)["data"]] == [model["model"]]


def test_non_loopback_bind_needs_a_key(gemma_gguf: Path, tmp_path: Path) -> None:
    """Refused before any model loads, with one sentence naming both ways to give a key."""
    import subprocess
    import sys

    from .conftest import child_env

    proc = subprocess.run(
        [sys.executable, "-m", "bdc_assistant", "serve", "--host", "0.0.0.0", "--port", "0"],
        cwd=REPO,
        env=child_env(tmp_path, gemma_gguf, PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    msg = proc.stderr.strip().removeprefix("bdc: ")
    assert "--api-key" in msg and "bdc keys set serve" in msg and msg.endswith(".") and "\n" not in msg


def test_argmax_mixture_is_served_end_to_end(gemma_gguf: Path, gemma_bundle: Path, tmp_path: Path) -> None:
    """`--mixture argmax`: the same bundle, but each layer's gates keep one expert at one scale."""
    from .conftest import child_env, start_serve, stop_serve

    served = start_serve(
        ["--bundle", str(gemma_bundle), "--mixture", "argmax"], child_env(tmp_path, gemma_gguf)
    )
    try:
        r = client(served).chat.completions.create(
            model="bdc", messages=[{"role": "user", "content": STUB}], max_tokens=40
        )
    finally:
        stop_serve(served)
    assert any("arg-max-per-layer" in line for line in served.log)
    bdc = r.bdc
    assert bdc["mixture"] == "argmax" and bdc["customized"] is True
    per_layer = bdc["gates_summary"]["per_layer"]
    assert len(per_layer) == 18 and all(sum(1 for v in row if v > 0) == 1 for row in per_layer)
    assert code_block(r.choices[0].message.content).startswith("def add(a, b):")
