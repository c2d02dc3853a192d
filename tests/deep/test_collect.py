"""``bdc collect`` on scripted LLMs (the fake HTTP server) and a scripted sandbox: resumable after a kill,
only programs passing the private tests become training pairs, validation sets refused, problems/hour
reported, the same exported set at any parallelism. One slow test runs the real command against a real
``llama_cpp.server`` (not run in the fast suite)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bdc_assistant import bundles
from bdc_assistant.cli import main as bdc
from bdc_assistant.config import DeepSettings
from bdc_assistant.deep import collect as col
from bdc_assistant.deep.consent import record_consent
from bdc_assistant.deep.evaluate import SandboxEvaluator
from bdc_assistant.deep.providers.presets import AgentSpec, parse_agent
from bdc_assistant.deep.runner import DeepRunner, search_config
from bdc_assistant.deep.search import Evaluation, PublicProblem
from bdc_assistant.errors import DatasetError
from bdc_assistant.evaluation.datasets import load_dataset
from bdc_assistant.store.runs import RunStore
from bdc_assistant.types import Problem, TestCase
from tests.deep.llama_server import llama_cpp_server

from .httpfakes import GOOD, FakeLLMServer, Script, adder_responder
from .scripted_sandbox import ALT, ScriptedSandbox

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = (TestCase("1 2\n", "3\n"), TestCase("6 7\n", "13\n"))
PRIVATE = (TestCase("2 2\n", "4\n"), TestCase("9 1\n", "10\n"))


def direct_responder(model: str, messages: list[dict[str, str]]) -> str:
    """Every program is written at once: ALT for a statement marked "(alt)", GOOD otherwise."""
    user = messages[-1]["content"]
    if "Write the complete Python 3 program" in user:
        return "```python\n" + (ALT if "(alt)" in user else GOOD) + "```"
    if "Propose" in user:
        return json.dumps([{"thought": "add them", "reasonableness": 0.5}] * 2)
    return "?"


def problem(i: int, *, alt: bool = False) -> Problem:
    return Problem(
        f"p{i}",
        f"Read a and b, print a+b. (#{i}){' (alt)' if alt else ''}",
        public_tests=PUBLIC,
        private_tests=PRIVATE,
    )


class Killed(Exception):
    """Stands in for kill -9 in the middle of a search."""


class Harness:
    """Runners over one store file and one fake server; records which problems each session searched."""

    def __init__(self, url: str, db: Path, out: Path) -> None:
        self.url, self.db, self.out = url, db, out
        self.agents: list[AgentSpec] = [parse_agent(f"openai:{url}:model-a")]
        self.sandbox = ScriptedSandbox()
        self.searched: list[str] = []
        self.kill_on: str | None = None
        self.lock = threading.Lock()
        self.store = RunStore(db)
        record_consent(self.store, [a.base_url for a in self.agents], scope="always")

    def evaluator(self, pub: PublicProblem) -> Any:
        inner = SandboxEvaluator(self.sandbox, pub)
        harness = self

        class Evaluator:
            def evaluate(self, code: str) -> Evaluation:
                if pub.id == harness.kill_on:
                    raise Killed(pub.id)
                return inner.evaluate(code)

            def trace(self, code: str, failure: object) -> str:
                return ""

            def probe(self, code: str, inputs: Any) -> Any:
                return inner.probe(code, inputs)

        return Evaluator()

    def runner(self) -> DeepRunner:
        harness = self

        class Counting(DeepRunner):
            def run(self, problem: Any, *args: Any, **kwargs: Any) -> Any:
                with harness.lock:
                    harness.searched.append(problem.id)
                return super().run(problem, *args, **kwargs)

            def resume(self, run_id: str, *args: Any, **kwargs: Any) -> Any:
                with harness.lock:
                    harness.searched.append(self.store.get_run(run_id).problem_id)
                return super().resume(run_id, *args, **kwargs)

        return Counting(
            store=RunStore(self.db),
            settings=DeepSettings(),
            evaluator_factory=self.evaluator,
            key_lookup=lambda name: None,
            sleep=lambda s: None,
        )

    def collect(
        self,
        problems: list[Problem],
        *,
        parallel: int = 1,
        negatives: Path | None = None,
        dataset: str = "mbpp-train",
        max_calls: int = 6,
        **kwargs: Any,
    ) -> dict[str, Any]:
        config = search_config(DeepSettings())
        spec = col.key_spec(dataset, self.agents, config, max_calls=max_calls, budget_usd=1.0)
        opts = col.Options(
            max_calls=max_calls, config=config, parallel=parallel, out_dir=self.out, negatives_dir=negatives
        )
        key = col.collection_key(spec)
        return col.collect(
            [col.Job(dataset, key, p) for p in problems],
            self.agents,
            store=self.store,
            make_runner=self.runner,
            sandbox=self.sandbox,
            opts=opts,
            **kwargs,
        )


def lines_in(folder: Path) -> list[dict[str, Any]]:
    out = []
    for f in sorted(folder.glob("*.jsonl")):
        out += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return out


@pytest.fixture
def direct_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(Script(direct_responder)) as srv:
        yield srv


@pytest.fixture
def harness(direct_server: FakeLLMServer, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(direct_server.url, tmp_path / "db.sqlite3", tmp_path / "trajectories")
    yield h
    h.store.close()


# ---- resumability ------------------------------------------------------------------------------------------


def test_killed_collection_resumes_with_only_the_unfinished_problem(harness: Harness) -> None:
    problems = [problem(1), problem(2), problem(3)]
    harness.kill_on = "p3"
    with pytest.raises(Killed):
        harness.collect(problems)
    (key,) = _keys(harness)
    state = col.rows(harness.store, key)
    assert {p: r["status"] for p, r in state.items()} == {"p1": "done", "p2": "done", "p3": "searching"}
    assert len(list(harness.out.glob("*.jsonl"))) == 2  # p3 exported nothing
    assert harness.store.get_run(state["p3"]["run_id"]).status == "failed"

    harness.kill_on, harness.searched = None, []
    rep = harness.collect(problems)
    assert harness.searched == ["p3"]  # p1 and p2 are skipped, p3 resumes its own run
    assert rep["already_done"] == 2 and rep["attempted"] == 1 and rep["verified"] == 1
    state = col.rows(harness.store, key)
    assert all(r["status"] == "done" and r["verified"] for r in state.values())
    assert rep["collection_done"] == 3 and rep["collection_verified"] == 3
    assert {line["problem_id"] for line in lines_in(harness.out)} == {"p1", "p2", "p3"}

    harness.searched = []
    rep = harness.collect(problems)  # nothing left: nothing searched, nothing sent
    assert harness.searched == [] and rep["attempted"] == 0 and rep["already_done"] == 3


def _keys(harness: Harness) -> list[str]:
    return [r[0] for r in harness.store.conn.execute("SELECT DISTINCT collection FROM collect_runs")]


def test_a_finished_but_unverified_run_is_verified_without_searching_again(harness: Harness) -> None:
    """A kill after the search finished but before the export: the rerun only verifies and exports."""
    harness.collect([problem(1)])
    (key,) = _keys(harness)
    harness.store.conn.execute("UPDATE collect_runs SET status = 'searching'")
    for f in harness.out.glob("*.jsonl"):
        f.unlink()
    harness.searched = []
    rep = harness.collect([problem(1)])
    assert harness.searched == [] and rep["searched"] == 0 and rep["attempted"] == 1
    assert rep["verified"] == 1 and rep["pairs_written"] == 1 and rep["calls"] == 0
    assert col.rows(harness.store, key)["p1"]["status"] == "done"


def test_a_provider_failure_is_retried_on_the_next_run(harness: Harness, tmp_path: Path) -> None:
    with FakeLLMServer(Script(direct_responder, failures=["401"] * 50)) as down:
        broken = Harness(down.url, tmp_path / "db.sqlite3", harness.out)
        try:
            rep = broken.collect([problem(1)])
        finally:
            broken.store.close()
    assert rep["errors"] == 1 and rep["verified"] == 0 and rep["collection_done"] == 0
    assert lines_in(harness.out) == []
    # a new port for the same model is the same collection: the errored problem is searched again
    rep = harness.collect([problem(1)])
    assert harness.searched == ["p1"] and rep["verified"] == 1 and rep["collection_done"] == 1


# ---- only verified pairs ------------------------------------------------------------------------------------


def test_public_pass_private_fail_is_never_a_training_pair(harness: Harness, tmp_path: Path) -> None:
    negatives = tmp_path / "negatives"
    rep = harness.collect([problem(1, alt=True), problem(2)], negatives=negatives)
    assert rep["attempted"] == 2 and rep["verified"] == 1
    pairs = lines_in(harness.out)
    assert [line["problem_id"] for line in pairs] == ["p2"]
    assert all(line["verified"] is True and line["solution"] == GOOD for line in pairs)
    assert ALT not in json.dumps(pairs)
    (neg,) = lines_in(negatives)
    assert neg["problem_id"] == "p1" and neg["solution"] == ALT
    assert neg["verified"] is False and neg["negative"] is True and "private tests (1/2" in neg["rejected"]
    rows = col.rows(harness.store, _keys(harness)[0])
    assert not rows["p1"]["verified"] and "private" in rows["p1"]["result"]["failure"]
    # without --negatives nothing but pairs is written anywhere
    assert rep["negatives_written"] == 1 and not (harness.out / "negatives").exists()


def test_collect_runs_are_never_exported_by_the_store_sync(
    bdc_home: Path, direct_server: FakeLLMServer
) -> None:
    """`bdc retrain` exports finished deep runs with public tests alone; a collect run is not one of them."""
    h = Harness(direct_server.url, bdc_home / "data" / "bdc.sqlite3", bundles.trajectories_dir())
    try:
        h.collect([problem(1, alt=True)])
        run_id = h.store.conn.execute("SELECT run_id FROM collect_runs").fetchone()[0]
        (h.out / f"{run_id}.jsonl").unlink()  # as if killed before the (empty) export was written
    finally:
        h.store.close()
    assert bundles.sync_store_trajectories() == []
    assert bundles.count_trajectories() == 0


def test_only_nodes_passing_the_private_tests_are_pairs(tmp_path: Path) -> None:
    """A real tree (prune and refine on): pruned and failing nodes go to negatives, every pair is GOOD."""
    with FakeLLMServer(Script(adder_responder)) as srv:
        h = Harness(srv.url, tmp_path / "db.sqlite3", tmp_path / "out")
        h.agents = [parse_agent(f"openai:{srv.url}:model-a"), parse_agent(f"openai:{srv.url}:model-b")]
        record_consent(h.store, [srv.url], scope="always")
        try:
            rep = h.collect([problem(1)], negatives=tmp_path / "neg", max_calls=30)
        finally:
            h.store.close()
    pairs, negatives = lines_in(tmp_path / "out"), lines_in(tmp_path / "neg")
    assert rep["verified"] == 1 and pairs and rep["pairs_written"] == len(pairs)
    assert {line["solution"] for line in pairs} == {GOOD}
    assert negatives and all(line["solution"] != GOOD or "pruned" in line["rejected"] for line in negatives)
    assert all(line["negative"] is True and line["verified"] is False for line in negatives)


# ---- validation sets refused ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mbpp-val", "codecontests-val", "humaneval", "mbpp", "codecontests"])
def test_validation_datasets_are_refused(name: str) -> None:
    with pytest.raises(DatasetError, match="must never become training data"):
        col.refuse_validation(name)


def test_cli_refuses_a_validation_set_in_one_sentence(
    direct_server: FakeLLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "collect",
        "--dataset",
        "mbpp-train",
        "--dataset",
        "mbpp-val",
        "--agent",
        f"openai:{direct_server.url}:m",
    ]
    assert bdc([*args, "--yes"]) == DatasetError.exit_code
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'mbpp-val'" in err and "must never become training data" in err
    assert direct_server.script.requests == []


def test_training_problems_hold_no_validation_id() -> None:
    from bdc_assistant.evaluation.splits import validation_ids

    train = col.training_problems("mbpp-train")
    assert train and not {p.id for p in train} & validation_ids("mbpp")
    assert len(col.training_problems("mbpp-train", limit=3)) == 3


def test_agents_see_the_solvers_text_with_mbpps_example_test() -> None:
    """The exported pairs train on the prompt the app answers: MBPP's stub plus its public example."""
    from bdc_assistant.evaluation.problem_text import solver_text

    raw = {p.id: p for p in load_dataset("mbpp-train")}
    for p in col.training_problems("mbpp-train", limit=5):
        assert p.statement == solver_text(raw[p.id]) != raw[p.id].statement
        assert "Your code should pass this test:" in p.statement


# ---- throughput ------------------------------------------------------------------------------------------------


class StepClock:
    """0 at the start, then half an hour later for every later reading."""

    def __init__(self) -> None:
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        return 0.0 if self.readings == 1 else 1800.0


def test_problems_per_hour_and_per_problem_spend_are_reported(harness: Harness) -> None:
    progress: list[str] = []
    rep = harness.collect([problem(1), problem(2)], on_progress=progress.append, clock=StepClock())
    assert rep["wall_s"] == 1800.0 and rep["problems_per_hour"] == 4.0
    assert rep["calls"] == 2 and rep["calls_per_problem"] == 1.0 and rep["tokens_per_problem"] > 0
    assert rep["pairs_written"] == 2 and rep["verified"] == 2
    assert progress[1].startswith("[1/2] p1: verified, 1 pairs") and "2.0 problems/h" in progress[1]
    assert progress[2].startswith("[2/2] p2:") and "4.0 problems/h · ETA 0m" in progress[2]
    text = col.summary(rep)
    assert "2 verified" in text and "4.0 problems/h" in text


def test_parallel_gives_the_same_exported_set_as_one_at_a_time(
    direct_server: FakeLLMServer, tmp_path: Path
) -> None:
    problems = [problem(i, alt=i % 3 == 0) for i in range(1, 7)]
    direct_server.script.delay_s = 0.05  # requests overlap when problems run in parallel

    def exported(parallel: int) -> tuple[set[tuple[str, str, str]], dict[str, Any]]:
        h = Harness(direct_server.url, tmp_path / f"db{parallel}.sqlite3", tmp_path / f"out{parallel}")
        try:
            rep = h.collect(problems, parallel=parallel)
        finally:
            h.store.close()
        lines = lines_in(tmp_path / f"out{parallel}")
        return {(line["problem_id"], line["thought"], line["solution"]) for line in lines}, rep

    one, rep1 = exported(1)
    three, rep3 = exported(3)
    assert one == three and len(one) == 4  # p3 and p6 write ALT: not verified, not exported
    for key in ("attempted", "verified", "pairs_written", "calls"):
        assert rep1[key] == rep3[key]


def test_cli_end_to_end_with_fakes(
    direct_server: FakeLLMServer,
    bdc_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The command itself: dataset, runners and sandbox swapped for fakes; --json report; rerun resumes."""
    import bdc_assistant.deep.runner as runner_mod
    import bdc_assistant.sandbox as sandbox_mod

    sandbox = ScriptedSandbox()
    monkeypatch.setattr(
        col, "training_problems", lambda d, limit=None: [problem(1), problem(2, alt=True)][:limit]
    )
    monkeypatch.setattr(sandbox_mod, "default_sandbox", lambda: sandbox)
    real = runner_mod.DeepRunner

    def fake_runner(**kwargs: Any) -> DeepRunner:
        return real(**kwargs, key_lookup=lambda name: None, sleep=lambda s: None)

    monkeypatch.setattr(runner_mod, "DeepRunner", fake_runner)
    args = [
        "collect",
        "--dataset",
        "mbpp-train",
        "--agent",
        f"openai:{direct_server.url}:model-a",
        "--yes",
        "--json",
    ]
    assert bdc(args) == 0
    captured = capsys.readouterr()
    rep = json.loads(captured.out.strip().splitlines()[-1])
    assert rep["attempted"] == 2 and rep["verified"] == 1 and rep["pairs_written"] == 1
    assert rep["datasets"] == ["mbpp-train"] and rep["agents"] == ["openai:model-a"]
    assert "problems/h" in captured.err and "ETA" in captured.err
    assert [line["problem_id"] for line in lines_in(bundles.trajectories_dir())] == ["p1"]
    n_requests = len(direct_server.script.requests)
    assert bdc(args) == 0
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rep["attempted"] == 0 and rep["already_done"] == 2 and rep["collection_verified"] == 1
    assert len(direct_server.script.requests) == n_requests


# ---- a real llama_cpp.server (slow; not run in the fast suite) -------------------------------------------------


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SmolLM2-135M-Instruct (chatml) behind `python -m llama_cpp.server`, like test_llamacpp_server.py."""
    from bdc_assistant.models import embedded

    with llama_cpp_server({"smollm2": embedded.small_gguf_path()}, tmp_path_factory.mktemp("llama")) as url:
        yield url


@pytest.mark.slow
@pytest.mark.network_local
def test_collect_one_mbpp_train_problem_on_llama_cpp_server(llama_server: str, bdc_home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env |= {
        "BDC_HOME": str(bdc_home),
        "PYTHONPATH": str(ROOT),
        "BDC_DEEP__MAX_OUTPUT_TOKENS": "160",
        "BDC_DEEP__TIMEOUT_S": "300",
        "BDC_DEEP__WIDTH": "1",
    }
    args = [
        sys.executable,
        "-m",
        "bdc_assistant",
        "collect",
        "--dataset",
        "mbpp-train",
        "--limit",
        "1",
        "--agent",
        f"openai:{llama_server}:smollm2",
        "--max-calls",
        "4",
        "--parallel",
        "1",
        "--yes",
        "--json",
    ]
    r = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    assert rep["problems"] == 1 and rep["attempted"] == 1 and rep["errors"] == 0
    assert 1 <= rep["calls"] <= 4 and rep["tokens_per_problem"] > 0 and rep["problems_per_hour"] > 0
    assert "problems/h" in r.stderr
    tdir = bdc_home / "data" / "trajectories"
    written = [json.loads(x) for f in tdir.glob("*.jsonl") for x in f.read_text().splitlines() if x.strip()]
    assert (
        len(written) == rep["pairs_written"]
    )  # a 135M model may well solve nothing: then nothing is written
    assert all(line["verified"] is True for line in written)
    # the rerun is a no-op: the problem is done
    r = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    assert rep["attempted"] == 0 and rep["already_done"] == 1
