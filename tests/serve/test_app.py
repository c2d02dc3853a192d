"""`bdc serve`'s app on a real uvicorn (in a thread) with scripted generators: the OpenAI contract, the
``bdc`` field, 400/401/404/503, the queue bound, and that a client disconnect stops generation."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bdc_assistant.serve.app import ServeState
from bdc_assistant.serve.pool import InstancePool
from bdc_assistant.serve.server import instance_info

from .fakes import THOUGHT, EndlessGenerator, StageGenerator, TextCustomizer, ThreadServer, make_solver
from .http import Stream, one_sentence, request

openai = pytest.importorskip("openai")

PROBLEM = "Write a function add(a, b) that returns the sum of a and b."


def _state(solvers: list[Any], *, queue: int = 4, api_key: str | None = None) -> ServeState:
    return ServeState(InstancePool(solvers, queue), "bdc", api_key, instance_info(solvers[0]))


@pytest.fixture
def fake_server() -> Iterator[tuple[ThreadServer, StageGenerator]]:
    gen = StageGenerator()
    with ThreadServer(_state([make_solver(gen, TextCustomizer())])) as srv:
        yield srv, gen


def client(srv: ThreadServer, key: str = "unused") -> Any:
    return openai.OpenAI(base_url=srv.base + "/v1", api_key=key, max_retries=0, timeout=60)


def _wait(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_models_lists_the_served_model(fake_server: tuple[ThreadServer, StageGenerator]) -> None:
    srv, _ = fake_server
    models = client(srv).models.list()
    assert [m.id for m in models.data] == ["bdc"]
    assert models.data[0].bdc["customized"] is True and models.data[0].bdc["bundle"] == "fake-bundle"
    status, _, body = request(srv.base, "GET", "/v1/models/bdc")
    assert status == 200 and body["id"] == "bdc"
    status, _, body = request(srv.base, "GET", "/v1/models/gpt-4o")
    assert status == 404 and one_sentence(body["error"]["message"])


def test_chat_answers_with_plan_code_and_its_gates(fake_server: tuple[ThreadServer, StageGenerator]) -> None:
    srv, gen = fake_server
    r = client(srv).chat.completions.create(
        model="bdc",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": PROBLEM}],
        temperature=0.7,
        seed=42,
    )
    content = r.choices[0].message.content
    assert (
        content
        == "## Plan\n1."
        + THOUGHT.rstrip("\n")
        + "\n\n## Solution\n```python\ndef add(a, b):\n    return a + b\n```\n"
    )
    assert r.choices[0].finish_reason == "stop" and r.object == "chat.completion"
    bdc = r.bdc
    assert bdc["customized"] is True and bdc["bundle"] == "fake-bundle"
    assert bdc["gates_summary"]["layers"] == 2 and len(bdc["gates_summary"]["per_layer"]) == 2
    assert [e["cluster"] for e in bdc["experts"]] == ["io", "math"]
    assert sum(e["share"] for e in bdc["experts"]) == pytest.approx(1.0, abs=1e-3)
    # the last user message is what was customized for, and this request's sampling reached the model
    assert gen.customizations[-1].gates == TextCustomizer().for_query(PROBLEM).gates
    assert {(p.temperature, p.seed) for _, p in gen.calls} == {(0.7, 42)}
    assert (
        r.usage.completion_tokens > 0
        and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    )


def test_chat_stream_carries_gates_first_and_finish_last(
    fake_server: tuple[ThreadServer, StageGenerator],
) -> None:
    srv, _ = fake_server
    chunks = list(
        client(srv).chat.completions.create(
            model="bdc",
            messages=[{"role": "user", "content": [{"type": "text", "text": PROBLEM}]}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].bdc["gates_summary"]["sha256_16"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "## Plan\n1." in text and "```python\ndef add(a, b):" in text and text.endswith("```\n")
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == "stop"
    assert finals[0].bdc["tokens"] > 0 and finals[0].bdc["finish"] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_completions_plain_and_streamed(fake_server: tuple[ThreadServer, StageGenerator]) -> None:
    srv, gen = fake_server
    c = client(srv)
    r = c.completions.create(model="bdc", prompt="def fib(n):", max_tokens=50, stop=["some"], seed=3)
    assert r.choices[0].text == " and then "  # cut at the stop string by the backend
    assert r.object == "text_completion" and r.bdc["customized"] is True
    assert gen.calls[-1][1].stop == ("some",) and gen.calls[-1][1].seed == 3
    pieces = list(c.completions.create(model="bdc", prompt="def fib(n):", max_tokens=3, stream=True))
    assert "".join(p.choices[0].text for p in pieces) == " and then so"  # three 4-character "tokens"
    assert pieces[0].bdc["gates_summary"] is not None
    assert pieces[-1].choices[0].finish_reason == "length"


def test_different_problems_get_different_gates(fake_server: tuple[ThreadServer, StageGenerator]) -> None:
    srv, _ = fake_server
    c = client(srv)
    a = c.chat.completions.create(model="bdc", messages=[{"role": "user", "content": PROBLEM}], max_tokens=2)
    b = c.chat.completions.create(
        model="bdc", messages=[{"role": "user", "content": "Reverse a list."}], max_tokens=2
    )
    again = c.chat.completions.create(
        model="bdc", messages=[{"role": "user", "content": PROBLEM}], max_tokens=2
    )
    assert a.bdc["gates_summary"]["sha256_16"] != b.bdc["gates_summary"]["sha256_16"]
    assert a.bdc["gates_summary"] == again.bdc["gates_summary"]


def test_stop_and_max_tokens_apply_to_what_the_client_sees(
    fake_server: tuple[ThreadServer, StageGenerator],
) -> None:
    srv, _ = fake_server
    c = client(srv)
    r = c.chat.completions.create(
        model="bdc", messages=[{"role": "user", "content": PROBLEM}], stop=["## Solution"]
    )
    assert r.choices[0].message.content == "## Plan\n1." + THOUGHT.rstrip("\n") + "\n\n"
    assert r.choices[0].finish_reason == "stop"
    r = c.chat.completions.create(model="bdc", messages=[{"role": "user", "content": PROBLEM}], max_tokens=3)
    assert r.choices[0].finish_reason == "length" and 0 < r.usage.completion_tokens <= 3
    assert "## Solution" not in r.choices[0].message.content


def test_plain_base_says_so() -> None:
    solver = make_solver(
        StageGenerator(), None, note="no solver bundle installed: answering with the plain base model"
    )
    with ThreadServer(_state([solver])) as srv:
        r = client(srv).chat.completions.create(model="bdc", messages=[{"role": "user", "content": PROBLEM}])
    assert "```python" in r.choices[0].message.content
    assert r.bdc["customized"] is False and r.bdc["gates_summary"] is None and r.bdc["experts"] is None
    assert "plain base" in r.bdc["note"]


BAD = [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    ({"model": "bdc"}, "'messages' is required"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
    ({"messages": [{"role": "user", "content": "x"}], "temperature": 9}, "temperature"),
    ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n = 1"),
    ({"messages": [{"role": "user", "content": "x"}], "max_tokens": "many"}, "max_tokens"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, "no user message"),
    (
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
        "text only",
    ),
    ({"messages": [{"role": "user", "content": "x"}], "stop": [str(i) for i in range(20)]}, "stop sequences"),
    ({"messages": [{"content": "x"}]}, "role"),
]


@pytest.mark.parametrize(("body", "says"), BAD)
def test_malformed_chat_request_is_400_with_one_sentence(
    fake_server: tuple[ThreadServer, StageGenerator], body: Any, says: str
) -> None:
    srv, gen = fake_server
    status, _, out = request(srv.base, "POST", "/v1/chat/completions", body)
    assert status == 400, out
    assert out["error"]["type"] == "invalid_request_error"
    assert says in out["error"]["message"] and one_sentence(out["error"]["message"]), out
    assert gen.calls == []  # nothing reached the model


def test_malformed_completion_and_wrong_routes(fake_server: tuple[ThreadServer, StageGenerator]) -> None:
    srv, _ = fake_server
    for body in ({"model": "bdc"}, {"prompt": ["a", "b"]}, {"prompt": ""}):
        status, _, out = request(srv.base, "POST", "/v1/completions", body)
        assert status == 400 and one_sentence(out["error"]["message"]), out
    status, _, out = request(srv.base, "GET", "/v1/chat/completions")
    assert status == 405 and one_sentence(out["error"]["message"])
    status, _, out = request(srv.base, "POST", "/v1/embeddings", {"input": "x"})
    assert status == 404 and one_sentence(out["error"]["message"])
    with pytest.raises(openai.BadRequestError) as err:
        client(srv).chat.completions.create(model="bdc", messages=[], max_tokens=5)
    assert err.value.status_code == 400


def test_api_key_is_enforced_when_configured() -> None:
    with ThreadServer(_state([make_solver(StageGenerator(), TextCustomizer())], api_key="s3cret-key")) as srv:
        status, _, out = request(srv.base, "GET", "/v1/models")
        assert status == 401 and one_sentence(out["error"]["message"])
        with pytest.raises(openai.AuthenticationError):
            client(srv, "wrong-key").chat.completions.create(
                model="bdc", messages=[{"role": "user", "content": "x"}]
            )
        ok = client(srv, "s3cret-key").chat.completions.create(
            model="bdc", messages=[{"role": "user", "content": "x"}]
        )
        assert ok.choices[0].message.content


def test_beyond_the_queue_bound_is_503() -> None:
    gen = EndlessGenerator()
    with ThreadServer(_state([make_solver(gen, TextCustomizer())], queue=1)) as srv:
        a = Stream(srv.base, "/v1/completions", {"prompt": "go", "max_tokens": 30000, "stream": True})
        assert a.status == 200 and a.events(2)  # A is being answered
        waiting: dict[str, Any] = {}
        b = threading.Thread(
            target=lambda: waiting.update(
                r=request(srv.base, "POST", "/v1/completions", {"prompt": "queued", "max_tokens": 2})
            )
        )
        b.start()
        _wait(lambda: request(srv.base, "GET", "/bdc/status")[2]["waiting"] == 1)
        status, headers, out = request(
            srv.base, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]}
        )
        assert status == 503 and headers.get("retry-after") == "1"
        assert out["error"]["type"] == "server_busy" and one_sentence(out["error"]["message"]), out
        with pytest.raises(openai.APIStatusError) as err:
            client(srv).completions.create(model="bdc", prompt="x", max_tokens=1)
        assert err.value.status_code == 503
        a.close()  # A goes away: B is served next
        b.join(30)
        assert waiting["r"][0] == 200 and waiting["r"][2]["choices"][0]["text"] == "x x "
        _wait(lambda: request(srv.base, "GET", "/bdc/status")[2]["pending"] == 0)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_stream_disconnect_stops_generation_within_a_second(path: str) -> None:
    gen = EndlessGenerator(delay_s=0.02)
    with ThreadServer(_state([make_solver(gen, TextCustomizer())])) as srv:
        body: dict[str, Any] = {"max_tokens": 30000, "stream": True}
        body.update(
            {"messages": [{"role": "user", "content": PROBLEM}]} if "chat" in path else {"prompt": "go"}
        )
        s = Stream(srv.base, path, body)
        assert s.status == 200 and len(s.events(5)) == 5
        assert gen.running
        closed = s.close()
        _wait(lambda: not gen.running, timeout=5)
        assert gen.stopped_at - closed < 1.0
        produced = gen.produced
        time.sleep(0.2)
        assert gen.produced == produced  # and it stays stopped
        _wait(lambda: request(srv.base, "GET", "/bdc/status")[2]["instances"][0]["busy"] is False)
        status = request(srv.base, "GET", "/bdc/status")[2]
        assert status["instances"][0]["last_finish"] == "cancelled" and status["pending"] == 0


def test_non_streaming_disconnect_stops_generation_too() -> None:
    import http.client
    import json
    import socket

    gen = EndlessGenerator(delay_s=0.02)
    with ThreadServer(_state([make_solver(gen, TextCustomizer())])) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        conn.request(
            "POST",
            "/v1/completions",
            body=json.dumps({"prompt": "go", "max_tokens": 30000}).encode(),
            headers={"Content-Type": "application/json"},
        )
        _wait(lambda: gen.produced > 5)
        assert conn.sock is not None
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
        closed = time.monotonic()
        _wait(lambda: not gen.running, timeout=5)
        assert gen.stopped_at - closed < 1.0


def test_two_workers_answer_at_the_same_time() -> None:
    gens = [EndlessGenerator(), EndlessGenerator()]
    with ThreadServer(_state([make_solver(g, TextCustomizer()) for g in gens], queue=0)) as srv:
        a = Stream(srv.base, "/v1/completions", {"prompt": "a", "max_tokens": 30000, "stream": True})
        b = Stream(srv.base, "/v1/completions", {"prompt": "b", "max_tokens": 30000, "stream": True})
        assert a.events(2) and b.events(2)
        status = request(srv.base, "GET", "/bdc/status")[2]
        assert [i["busy"] for i in status["instances"]] == [True, True] and status["workers"] == 2
        code, _, _ = request(srv.base, "POST", "/v1/completions", {"prompt": "c", "max_tokens": 1})
        assert code == 503  # queue 0: a third request has nowhere to wait
        a.close()
        b.close()
        _wait(lambda: not any(g.running for g in gens))


def test_without_v1_prefix_too(fake_server: tuple[ThreadServer, StageGenerator]) -> None:
    srv, _ = fake_server
    status, _, out = request(
        srv.base, "POST", "/chat/completions", {"messages": [{"role": "user", "content": PROBLEM}]}
    )
    assert status == 200 and "```python" in out["choices"][0]["message"]["content"]


class FailingGenerator(StageGenerator):
    def generate(self, prompt: str, params: Any, cancel: Any = None) -> Any:
        from bdc_assistant.errors import ModelError

        yield "partial "
        raise ModelError("The prompt has 5000 tokens, more than the context window of 4096.")


def test_a_model_error_is_one_sentence_and_frees_the_instance() -> None:
    with ThreadServer(_state([make_solver(FailingGenerator(), TextCustomizer())])) as srv:
        code, _, out = request(srv.base, "POST", "/v1/completions", {"prompt": "x"})
        assert code == 500 and out["error"]["message"].startswith("The prompt has 5000 tokens")
        assert one_sentence(out["error"]["message"])
        s = Stream(srv.base, "/v1/completions", {"prompt": "x", "stream": True})
        events = s.events(3)
        assert events[0]["choices"][0]["text"] == "partial "
        assert "context window" in events[1]["error"]["message"]
        s.close()
        _wait(lambda: request(srv.base, "GET", "/bdc/status")[2]["pending"] == 0)
        assert request(srv.base, "GET", "/bdc/status")[2]["instances"][0]["last_finish"] == "error"


def test_a_client_that_leaves_the_queue_gives_its_place_back() -> None:
    gen = EndlessGenerator()
    with ThreadServer(_state([make_solver(gen, TextCustomizer())], queue=1)) as srv:
        a = Stream(srv.base, "/v1/completions", {"prompt": "a", "max_tokens": 30000, "stream": True})
        assert a.events(1)
        b = Stream(srv.base, "/v1/completions", {"prompt": "b", "max_tokens": 5, "stream": True})
        assert b.status == 200  # admitted: its response started, it waits for the instance
        _wait(lambda: request(srv.base, "GET", "/bdc/status")[2]["waiting"] == 1)
        b.close()
        _wait(lambda: request(srv.base, "GET", "/bdc/status")[2]["waiting"] == 0)
        assert request(srv.base, "GET", "/bdc/status")[2]["pending"] == 1  # only A
        got: dict[str, Any] = {}  # C takes B's place in the queue (no 503) and is served once A goes
        c = threading.Thread(
            target=lambda: got.update(
                r=request(srv.base, "POST", "/v1/completions", {"prompt": "c", "max_tokens": 2})
            )
        )
        c.start()
        _wait(lambda: request(srv.base, "GET", "/bdc/status")[2]["waiting"] == 1)
        a.close()
        c.join(30)
        assert got["r"][0] == 200 and got["r"][2]["choices"][0]["text"] == "x x "
        _wait(lambda: request(srv.base, "GET", "/bdc/status")[2]["pending"] == 0)


def test_a_free_instance_starts_the_job_at_admission_without_jumping_the_queue() -> None:
    """``try_start`` (what the handler calls before it builds the response) starts a job only on an instance
    that is free with nobody waiting for it; otherwise the request takes the queue's path."""
    import asyncio

    from bdc_assistant.backends.base import CancelToken
    from bdc_assistant.serve.jobs import Delta

    started: list[str] = []

    def job(name: str, gate: threading.Event) -> Any:
        def run(solver: Any, cancel: CancelToken, emit: Any, on_token: Any) -> None:
            started.append(name)
            gate.wait(10)
            emit(Delta(name))

        return run

    async def scenario() -> None:
        pool = InstancePool([object()], max_queue=2)
        gate_a, gate_b, gate_c = threading.Event(), threading.Event(), threading.Event()
        a = pool.admit()
        running_a = pool.try_start(a, job("a", gate_a), CancelToken())
        assert running_a is not None
        await asyncio.sleep(0.05)
        assert started == ["a"]  # running before anyone reads its items
        b = pool.admit()
        assert pool.try_start(b, job("b", gate_b), CancelToken()) is None  # busy: b queues
        items_b = pool.run(b, job("b", gate_b), CancelToken())
        task_b = asyncio.ensure_future(items_b.__anext__())
        await asyncio.sleep(0.05)
        assert pool.status()["waiting"] == 1
        gate_a.set()
        assert [i async for i in pool.run(a, job("a", gate_a), CancelToken(), running_a)] == [Delta("a")]
        c = pool.admit()  # the instance is back, but b waited first
        assert pool.try_start(c, job("c", gate_c), CancelToken()) is None
        gate_b.set()
        assert await task_b == Delta("b")
        await items_b.aclose()
        assert started == ["a", "b"]
        c.drop()

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_a_client_that_leaves_before_the_first_event_stops_its_job() -> None:
    """The job starts at admission, before the stream is read: a client gone by then still stops it."""
    import json
    import socket

    gen = EndlessGenerator(delay_s=0.02)
    with ThreadServer(_state([make_solver(gen, TextCustomizer())])) as srv:
        body = json.dumps({"prompt": "go", "max_tokens": 30000, "stream": True}).encode()
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        sock.sendall(
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        closed = time.monotonic()
        _wait(lambda: gen.stopped_at > 0, timeout=5)
        assert gen.stopped_at - closed < 1.0
        _wait(lambda: request(srv.base, "GET", "/bdc/status")[2]["pending"] == 0)
        assert request(srv.base, "GET", "/bdc/status")[2]["instances"][0]["busy"] is False
