"""Time to first token and decode rate through `bdc serve` (HTTP, SSE) vs the same work in process.

Both sides run the same model, the same bundle and the same greedy settings, one request at a time,
alternating (in process, then HTTP) so a change in machine load hits both alike:

- ``completions``: customize for the prompt, then continue it — in process via the server's own
  ``complete_job`` (no HTTP), over HTTP as a streamed ``/v1/completions`` read with the ``openai`` client.
- ``chat``: the two-stage solver — in process ``Solver.solve``, over HTTP a streamed ``/v1/chat/completions``
  (no ``max_tokens`` in the request: both sides use the settings' stage caps, so they do the same work).

TTFT is measured from the call to the first *generated* token (the chat stream's first chunk is the
plan's "1." prefix, written before the model runs, so it is skipped on both sides); the decode rate is
1 / the median gap between consecutive tokens. ``overhead_*`` = HTTP / in process − 1 on the medians;
``paired_overhead_*`` = the median over runs of each HTTP run against the in-process run just before it
(robust when other processes load the machine). Goal: ≤ 5 %. ``completions_*_job_ttft_s`` is the job's own
time from its start to its first token (for HTTP, as the server reports it in ``bdc.ttft_ms``): the difference
to ``*_ttft_s`` is what the path around the job (client, HTTP, thread hand-off) adds.
The answers must be identical on both sides (``same_text``), which shows both did the same work.

    python bench/serve.py --json                       # embedded gemma-3-270m, random K=3 bundle
    python bench/serve.py --json --gguf MODEL.gguf --bundle DIR --repeats 5
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PROBLEMS = (
    'def add(a, b):\n    """Return the sum of a and b."""\n',
    "Read a line of text and print how many words it has.",
    'def is_palindrome(s: str) -> bool:\n    """Check whether s reads the same backwards."""\n',
)
PROMPTS = (
    "def fibonacci(n):\n",
    "# Read two integers and print their sum\n",
    "import sys\n\ndef main():\n",
)


def _median(xs: list[float]) -> float | None:
    return round(statistics.median(xs), 4) if xs else None


def _rate(stamps: list[float]) -> float | None:
    """1 / median gap between consecutive tokens: robust to the plan→code prefill in the middle of a chat
    answer and to a moment of load from other processes (as bench/generate.py measures decode)."""
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    median = statistics.median(gaps) if len(gaps) >= 2 else 0.0
    return 1.0 / median if median > 0 else None


# ---- in process ---------------------------------------------------------------------------------------


def inproc_completion(solver: Any, prompt: str, max_tokens: int) -> dict[str, Any]:
    from bdc_assistant.backends.base import CancelToken
    from bdc_assistant.serve.jobs import Begin, Delta, End, Sampling, complete_job

    stamps: list[float] = []
    parts: list[str] = []
    job: dict[str, Any] = {}
    t0 = time.perf_counter()

    def emit(item: Any) -> None:
        if isinstance(item, Delta):
            stamps.append(time.perf_counter())
            parts.append(item.text)
        elif isinstance(item, Begin):
            job["setup_ms"] = item.bdc.get("setup_ms")
        elif isinstance(item, End):
            job["ttft"] = item.ttft_s

    complete_job(solver, prompt, Sampling(max_tokens=max_tokens), CancelToken(), emit)
    return {
        "ttft": stamps[0] - t0 if stamps else None,
        "job_ttft": job.get("ttft"),
        "setup_ms": job.get("setup_ms"),
        "tok_s": _rate(stamps),
        "tokens": len(stamps),
        "text": "".join(parts),
    }


def inproc_chat(solver: Any, problem: str) -> dict[str, Any]:
    """The app's own path: ``Solver.solve``; its events rendered as the server renders them."""
    from bdc_assistant.serve.render import MarkdownRenderer
    from bdc_assistant.types import Answer, CodeToken, ThoughtToken

    stamps: list[float] = []
    renderer = MarkdownRenderer()
    text: list[str] = []
    t0 = time.perf_counter()
    answer = None
    first = True
    for ev in solver.solve(problem):
        text.append(renderer.feed(ev))
        if isinstance(ev, ThoughtToken | CodeToken):
            if first:  # the "1." prefix, written before the model runs
                first = False
                continue
            stamps.append(time.perf_counter())
        elif isinstance(ev, Answer):
            answer = ev
    assert answer is not None
    text.append(renderer.finish())
    return {
        "ttft": stamps[0] - t0 if stamps else None,
        "tok_s": _rate(stamps),
        "tokens": answer.tokens,
        "text": "".join(text),
    }


# ---- over HTTP ----------------------------------------------------------------------------------------


class RawClient:
    """Streams with http.client and json.loads per event: no SDK objects per chunk. With only 2 cores, the
    client's own per-chunk work competes with the model's threads; this separates that from the server's."""

    def __init__(self, base_url: str) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(base_url)
        self.host, self.port, self.prefix = parts.hostname or "127.0.0.1", parts.port, parts.path.rstrip("/")
        self.completions = _RawEndpoint(self, "/completions")
        self.chat = type("Chat", (), {"completions": _RawEndpoint(self, "/chat/completions")})()

    def stream(self, path: str, body: dict[str, Any]) -> Any:
        import http.client

        conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
        conn.request(
            "POST",
            self.prefix + path,
            json.dumps({**body, "stream": True}),
            {"Content-Type": "application/json"},
        )
        resp = conn.getresponse()
        for raw in resp:
            if raw.startswith(b"data: ") and not raw.startswith(b"data: [DONE]"):
                yield _Obj(json.loads(raw[6:]))
        conn.close()


class _RawEndpoint:
    def __init__(self, client: RawClient, path: str) -> None:
        self.client, self.path = client, path

    def create(self, **body: Any) -> Any:
        body.pop("stream", None)
        return self.client.stream(self.path, body)


class _Obj:
    """Attribute access over a decoded JSON object (chunk.choices[0].delta.content, chunk.bdc)."""

    def __init__(self, data: Any) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        value = self._data.get(name) if isinstance(self._data, dict) else None
        if isinstance(value, dict):
            return _Obj(value)
        if isinstance(value, list):
            return [_Obj(v) if isinstance(v, dict) else v for v in value]
        return value


def http_completion(client: Any, prompt: str, max_tokens: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    stamps: list[float] = []
    parts: list[str] = []
    final: dict[str, Any] = {}
    for chunk in client.completions.create(model="bdc", prompt=prompt, max_tokens=max_tokens, stream=True):
        text = chunk.choices[0].text if chunk.choices else ""
        if text:
            stamps.append(time.perf_counter())
            parts.append(text)
        if chunk.choices and chunk.choices[0].finish_reason:
            bdc = getattr(chunk, "bdc", None) or {}
            final = bdc._data if isinstance(bdc, _Obj) else bdc
    job_ms = final.get("ttft_ms")
    return {
        "ttft": stamps[0] - t0 if stamps else None,
        "job_ttft": job_ms / 1e3 if job_ms is not None else None,
        "setup_ms": final.get("setup_ms"),
        "tok_s": _rate(stamps),
        "tokens": len(stamps),
        "text": "".join(parts),
    }


def http_chat(client: Any, problem: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    stamps: list[float] = []
    content: list[str] = []
    final: dict[str, Any] = {}
    for chunk in client.chat.completions.create(
        model="bdc", messages=[{"role": "user", "content": problem}], stream=True
    ):
        delta = chunk.choices[0].delta.content if chunk.choices else None
        if delta:
            content.append(delta)
            if len(content) > 1:  # skip the "## Plan\n1." chunk written before the model runs
                stamps.append(time.perf_counter())
        if chunk.choices and chunk.choices[0].finish_reason:
            bdc = getattr(chunk, "bdc", None) or {}
            final = bdc._data if isinstance(bdc, _Obj) else bdc
    tokens = final.get("tokens")
    return {
        "ttft": stamps[0] - t0 if stamps else None,
        "tok_s": _rate(stamps),
        "tokens": tokens,
        "text": "".join(content),
    }


# ---- orchestration ------------------------------------------------------------------------------------


def _start_server(env: dict[str, str], bundle: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bdc_assistant", "serve", "--port", "0", "--bundle", bundle, "--queue", "1"],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    found: dict[str, str] = {}
    ready = threading.Event()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "listening on " in line:
                found["url"] = line.split("listening on ", 1)[1].split()[0]
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(600) or "url" not in found:
        proc.kill()
        raise RuntimeError("bdc serve did not start")
    return proc, found["url"]


def run(args: argparse.Namespace) -> dict[str, Any]:
    import openai

    load_before = os.getloadavg()[0]  # before this bench adds its own 2 threads

    from bdc_assistant.config import load_settings
    from bdc_assistant.models import embedded

    gguf = (
        Path(args.gguf)
        if args.gguf
        else Path((getattr(embedded, "install_gemma", None) or embedded.install_base)())
    )
    tmp = Path(tempfile.mkdtemp(prefix="bdc-bench-serve-"))
    bundle = args.bundle
    if bundle is None:
        from bdc_assistant.disen.random_bundle import make_random_bundle

        bundle = str(make_random_bundle(gguf, tmp / "bundle", K=3, r=4, seed=0, scale=0.05))
    env_over = {
        "BDC_HOME": str(tmp / "home"),
        "BDC_MODELS__BASE_GGUF": str(gguf),
        "BDC_BACKEND__THREADS": str(args.threads),
        "BDC_SOLVER__THOUGHT_TOKENS": str(args.thought_tokens),
        "BDC_SOLVER__MAX_TOKENS": str(args.tokens),  # chat: both sides use the settings' stage caps
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    if args.chat_template:
        env_over["BDC_MODELS__CHAT_TEMPLATE"] = args.chat_template
    os.environ.update(env_over)
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    from bdc_assistant.solver.session import open_solver

    t0 = time.perf_counter()
    solver = open_solver(load_settings(), backend="llamacpp", bundle=bundle)
    if solver.customizer is not None:
        solver.customizer.for_query("warm up")  # load the encoder, as the server does at start
    load_s = time.perf_counter() - t0
    proc, url = _start_server(env, bundle)
    client: Any = (
        RawClient(url)
        if args.client == "raw"
        else openai.OpenAI(base_url=url, api_key="bench", max_retries=0, timeout=600)
    )
    rows: dict[str, list[dict[str, Any]]] = {"completions": [], "chat": []}
    loads: list[float] = [os.getloadavg()[0]]
    try:
        # one warm-up each so neither side pays first-call costs inside the timings
        inproc_completion(solver, PROMPTS[0], 4)
        http_completion(client, PROMPTS[0], 4)
        for r in range(args.repeats):
            for prompt in PROMPTS[: args.limit]:
                a = inproc_completion(solver, prompt, args.tokens)
                b = http_completion(client, prompt, args.tokens)
                rows["completions"].append(
                    {"repeat": r, "inproc": a, "http": b, "same_text": a["text"] == b["text"]}
                )
            for problem in PROBLEMS[: args.limit]:
                a = inproc_chat(solver, problem)
                b = http_chat(client, problem)
                rows["chat"].append(
                    {"repeat": r, "inproc": a, "http": b, "same_text": a["text"] == b["text"]}
                )
            loads.append(os.getloadavg()[0])
    finally:
        proc.terminate()
        proc.wait(30)
        solver.close()
    result: dict[str, Any] = {
        "bench": "serve",
        "model": gguf.name,
        "bundle": Path(bundle).name,
        "tokens": args.tokens,
        "repeats": args.repeats,
        "problems_per_kind": min(args.limit, len(PROMPTS)),
        "client": args.client,
        "threads": args.threads,
        "inproc_load_s": round(load_s, 2),
    }
    for kind, items in rows.items():
        for side in ("inproc", "http"):
            result[f"{kind}_{side}_ttft_s"] = _median(
                [x[side]["ttft"] for x in items if x[side]["ttft"] is not None]
            )
            result[f"{kind}_{side}_tok_s"] = _median(
                [x[side]["tok_s"] for x in items if x[side]["tok_s"] is not None]
            )
            setups = [x[side]["setup_ms"] for x in items if x[side].get("setup_ms") is not None]
            if setups:  # the customization's share of the job TTFT (embedding + adapter swap)
                result[f"{kind}_{side}_setup_ms"] = _median(setups)
            jobs = [x[side]["job_ttft"] for x in items if x[side].get("job_ttft") is not None]
            if jobs:  # the job's own time to first token (server-side for HTTP): splits transport from job
                result[f"{kind}_{side}_job_ttft_s"] = _median(jobs)
        i_ttft, h_ttft = result[f"{kind}_inproc_ttft_s"], result[f"{kind}_http_ttft_s"]
        i_rate, h_rate = result[f"{kind}_inproc_tok_s"], result[f"{kind}_http_tok_s"]
        if i_ttft and h_ttft:
            result[f"overhead_{kind}_ttft"] = round(h_ttft / i_ttft - 1, 4)
        if i_rate and h_rate:
            result[f"overhead_{kind}_tok_s"] = round(i_rate / h_rate - 1, 4)
        result[f"{kind}_same_text"] = all(x["same_text"] for x in items)
        # Paired: each HTTP run against the in-process run just before it (same moment, same load).
        pairs_t = [
            x["http"]["ttft"] / x["inproc"]["ttft"]
            for x in items
            if x["http"]["ttft"] and x["inproc"]["ttft"]
        ]
        pairs_r = [
            x["inproc"]["tok_s"] / x["http"]["tok_s"]
            for x in items
            if x["http"]["tok_s"] and x["inproc"]["tok_s"]
        ]
        if pairs_t:
            result[f"paired_overhead_{kind}_ttft"] = round(statistics.median(pairs_t) - 1, 4)
        if pairs_r:
            result[f"paired_overhead_{kind}_tok_s"] = round(statistics.median(pairs_r) - 1, 4)
    result["load_avg_1m"] = {
        "before": round(load_before, 2),
        "start": round(loads[0], 2),
        "max": round(max(loads), 2),
        "end": round(loads[-1], 2),
    }
    from bench.generate import _machine

    result["machine"] = _machine()
    result["runs"] = {
        kind: [
            {
                "inproc": {k: v for k, v in x["inproc"].items() if k != "text"},
                "http": {k: v for k, v in x["http"].items() if k != "text"},
                "same_text": x["same_text"],
            }
            for x in items
        ]
        for kind, items in rows.items()
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line (and write --out)")
    parser.add_argument("--gguf", help="base model GGUF (default: the embedded gemma-3-270m)")
    parser.add_argument("--bundle", help="bundle dir (default: a random K=3, r=4 bundle for the base)")
    parser.add_argument("--chat-template", default="completion", help="models.chat_template for both sides")
    parser.add_argument(
        "--tokens",
        type=int,
        default=64,
        help="completions: max_tokens; chat: solver.max_tokens of the code stage (default 64)",
    )
    parser.add_argument("--thought-tokens", type=int, default=48, help="solver.thought_tokens (default 48)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds over the problems (default 3)")
    parser.add_argument(
        "--client",
        choices=["openai", "raw"],
        default="openai",
        help="HTTP client: the openai SDK (default) or raw SSE",
    )
    parser.add_argument(
        "--limit", type=int, default=len(PROMPTS), help="prompts/problems per kind (default all 3)"
    )
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads on both sides (default 2)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "serve.json")
    args = parser.parse_args(argv)
    if args.tokens < 8 or args.thought_tokens < 8 or min(args.repeats, args.threads, args.limit) < 1:
        parser.error(
            "tokens and thought-tokens must be >= 8 (the solver's minimum), repeats and threads >= 1"
        )
    from bdc_assistant.errors import BdcError

    try:
        result = run(args)
    except BdcError as exc:
        print(f"bdc: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.json:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        summary = {k: v for k, v in result.items() if k != "runs"}
        print(json.dumps(summary, ensure_ascii=False))
    else:
        for key, value in result.items():
            if key != "runs":
                print(f"{key:>28}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
