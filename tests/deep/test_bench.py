"""``bdc deep-bench`` on scripted LLMs (the fake HTTP server) and a scripted sandbox: every method's
numbers are exact, at a budget where prune and refine have room to act."""

from __future__ import annotations

from bdc_assistant.deep.bench import run_bench
from bdc_assistant.deep.providers.presets import parse_agent
from bdc_assistant.types import Problem, Status, TestCase, Verdict

from .conftest import ADD, make_runner
from .httpfakes import BAD, GOOD, HALF

# what each scripted program prints for "a b"
PROGRAMS = {GOOD: lambda a, b: a + b, HALF: lambda a, b: a + b if a < 5 else 0, BAD: lambda a, b: a - b}
PROBLEM = Problem(
    "add",
    ADD.statement,
    public_tests=ADD.public_tests,
    private_tests=(TestCase("2 2\n", "4\n"), TestCase("9 1\n", "10\n")),
)


class ScriptedSandbox:
    def run_tests(self, code: str, tests: tuple[TestCase, ...], checker: str | None = None) -> list[Verdict]:
        fn = PROGRAMS.get(code)
        out = []
        for t in tests:
            a, b = map(int, t.input.split())
            ok = fn is not None and str(fn(a, b)) == t.output.strip()
            out.append(Verdict(Status.PASS if ok else Status.WRONG))
        return out


def test_every_method_at_an_equal_budget(server, store) -> None:
    runner = make_runner(store, [server.url])
    agents = [parse_agent(f"openai:{server.url}:model-{c}") for c in "ab"]
    report = run_bench(runner, [PROBLEM], agents, max_calls=12, budget_usd=0, sandbox=ScriptedSandbox())
    got = {
        name: (m["ac"], m["pr"], m["calls"], m["pruned"], m["refined"], m["stopped_by"])
        for name, m in report["methods"].items()
    }
    # the direct solve writes HALF (private PR 50); model-a's best-rated plan is "subtract" (BAD), only
    # model-b ever proposes "sum" (GOOD); AC and PR are on the private tests
    assert got == {
        "zero-shot[openai:model-a]": (0.0, 50.0, 1, 0, 0, {"rollouts": 1}),
        "zero-shot[openai:model-b]": (0.0, 50.0, 1, 0, 0, {"rollouts": 1}),
        "single[openai:model-a]": (100.0, 100.0, 6, 0, 1, {"solved": 1}),  # refine turns subtract into sum
        "single[openai:model-b]": (100.0, 100.0, 10, 0, 0, {"solved": 1}),
        "mc-toa": (0.0, 50.0, 12, 0, 0, {"max_calls": 1}),
        "mc-toa+prune": (0.0, 50.0, 12, 2, 0, {"max_calls": 1}),  # pruning alone does not reach sum
        "mc-toa+prune+refine": (100.0, 100.0, 10, 0, 1, {"solved": 1}),
    }
