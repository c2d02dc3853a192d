from __future__ import annotations

from collections.abc import Iterator

import pytest

from bdc_assistant.config import DeepSettings
from bdc_assistant.deep.consent import record_consent
from bdc_assistant.deep.runner import DeepRunner
from bdc_assistant.store.runs import RunStore
from bdc_assistant.types import Problem, TestCase

from .fakes import TableEvaluator
from .httpfakes import FakeLLMServer, Script, adder_responder

ADD = Problem(
    "add", "Read a and b, print a+b.", public_tests=(TestCase("1 2\n", "3\n"), TestCase("6 7\n", "13\n"))
)


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(Script(adder_responder)) as srv:
        yield srv


@pytest.fixture
def store() -> Iterator[RunStore]:
    s = RunStore()
    yield s
    s.close()


def make_runner(store: RunStore, urls: list[str], *, consent: bool = True, **settings: object) -> DeepRunner:
    if consent:
        record_consent(store, urls, scope="always")
    return DeepRunner(
        store=store,
        settings=DeepSettings(**settings),  # type: ignore[arg-type]
        evaluator_factory=lambda p: TableEvaluator(),
        key_lookup=lambda name: None,
        sleep=lambda s: None,
    )
