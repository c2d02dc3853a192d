"""Acceptance: `bdc serve` on the embedded default (Qwen2.5-Coder-0.5B-Instruct, chat template from the GGUF)
with the bundle shipped for it (``--bundle shipped``: trained on this base, K = 3), driven by the official
`openai` client. Different problems get different gates, and the gates follow the problem: the expert of the
cluster a problem is nearest to is fully open for it (an input-invariant bundle fails this)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Served, child_env, start_serve, stop_serve

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.slow

# Three problems of different kinds (arithmetic, text, tuples/lists), as a user would type them.
PROBLEMS = (
    "Write a python function to check whether the given number is a perfect square or not.",
    "Write a function to remove all whitespaces from the given string using regex.",
    "Write a function to find the pairwise addition of the elements of the given tuples.",
)


@pytest.fixture(scope="module")
def embedded_server(embedded_base_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("serve_embedded_home")
    env = child_env(home, embedded_base_gguf, BDC_MODELS__CHAT_TEMPLATE="auto", BDC_SOLVER__MAX_TOKENS="160")
    del env["BDC_MODELS__BASE_GGUF"]  # the embedded default, as `bdc serve` runs for a user
    served = start_serve(["--bundle", "shipped"], env)
    try:
        yield served
    finally:
        stop_serve(served)


def _client(served: Served) -> Any:
    return openai.OpenAI(base_url=served.v1, api_key="unused", max_retries=0, timeout=300)


def _ask(served: Served, text: str, max_tokens: int) -> Any:
    return _client(served).chat.completions.create(
        model="bdc", messages=[{"role": "user", "content": text}], max_tokens=max_tokens
    )


def test_the_embedded_default_answers_with_code_customized(embedded_server: Served) -> None:
    r = _ask(embedded_server, PROBLEMS[0], 160)
    content = r.choices[0].message.content
    assert re.search(r"```python\n.*def \w+\(", content, re.S), content
    bdc = r.bdc
    assert bdc["customized"] is True
    assert bdc["gates_summary"]["layers"] == 24 and bdc["gates_summary"]["experts"] == 3


def test_the_embedded_default_streams_an_answer_with_code(embedded_server: Served) -> None:
    chunks = list(
        _client(embedded_server).chat.completions.create(
            model="bdc", messages=[{"role": "user", "content": PROBLEMS[1]}], max_tokens=160, stream=True
        )
    )
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 5 and re.search(r"```python\n.*def \w+\(", content, re.S), content
    assert chunks[0].bdc["customized"] is True and chunks[0].bdc["gates_summary"]["layers"] == 24


def test_two_problems_get_different_gates_that_follow_the_problem(embedded_server: Served) -> None:
    seen = []
    for text in PROBLEMS:
        bdc = _ask(embedded_server, text, 1).bdc
        summary, mixture = bdc["gates_summary"], bdc["experts"]
        nearest = max(range(3), key=lambda k: summary["cluster_similarity"][k])
        seen.append((summary["sha256_16"], nearest, [e["gate"] for e in mixture]))
    assert len({s[0] for s in seen}) == len(PROBLEMS), seen  # every problem its own gates
    assert len({s[1] for s in seen}) >= 2, seen  # the problems sit near different clusters...
    for _, nearest, gates in seen:  # ...and f opens each one's own expert fully (another may be open too)
        assert gates[nearest] >= max(gates) - 0.05, seen
    spread = max(abs(a - b) for s in seen for t in seen for a, b in zip(s[2], t[2], strict=True))
    assert spread > 0.5, seen  # an expert that is open for one problem is (nearly) shut for another
