"""``bdc collect``: verified System-2 trajectories made locally, on the TRAINING problems only, resumably.

For every training problem (``mbpp-train``, ``codecontests-train``: everything but the fixed validation ids;
validation and test sets are refused, :func:`refuse_validation`) that this *collection* has not finished,
MC-ToA searches with the given agents (a :class:`~.runner.DeepRunner` per worker, so every tree is stored
and the same consent rules hold: nothing is sent without consent on record, 127.0.0.1 included). The
search sees the public tests only. Afterwards the final program runs on the public AND the private tests in
the sandbox (training problems may use them); the run is *verified* only when it passes both. A verified
run's export is the ``bdc runs export --format jsonl`` schema, restricted further: a line is written only
when the node is a verified pair by :mod:`.exports`' rules (unpruned, public tests all pass) AND its program
passes the private tests too. So t2s pairs come from programs that pass every test we have and p2t pairs
from the thoughts on the path to them. Everything else (ill / pruned / failing nodes, every line of an
unverified run) is never a training pair; with ``negatives_dir`` it is written there, marked
``"verified": false, "negative": true`` with a ``"rejected"`` reason, in a separate file per run outside
the trainer's trajectories dir.

Resumable. A collection is keyed by :func:`collection_key`: dataset + agents (provider and model, not the
URL: a server restarted on another port continues the same collection) + search config + budgets. The
store's ``collect_runs`` table (same SQLite file as the runs) has one row per (collection, problem): the
run id is recorded *before* the search starts, and the row becomes ``done`` only after the export is
written. Rerunning skips ``done`` problems; a problem whose process was killed mid-search resumes its run
from the last checkpoint (``DeepRunner.resume``); a run that finished but was not yet verified is verified
without searching again. So a killed process loses at most the calls since the last rollout of the
problems in flight. Runs a provider failure ended are retried next time (the response cache makes the
calls already answered free). ``bundles.sync_store_trajectories`` (``bdc retrain``) never exports a
collect run itself: its export is this module's, or none.

Throughput. ``parallel`` problems are in flight at once (threads, one runner and one store connection each;
each agent server queues its own requests). Progress lines: done/total, verified, problems/hour, ETA. The
report: problems attempted, verified, pairs (lines) written, wall time, problems/hour, calls and tokens per
problem.

Local run with two ``llama_cpp.server`` processes (one per model): the exact commands are in
``bdc collect --help`` (:data:`bdc_assistant.commands.collect.EPILOG`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import atomic
from ..errors import BdcError, DatasetError, StoreError
from ..store.db import register_migrations
from ..store.runs import RunStore, new_run_id, pid_alive
from ..types import CancelToken, Problem
from .exports import safe_name, trajectories
from .providers.presets import AgentSpec
from .runner_pool import RunnerPool

if TYPE_CHECKING:
    from .runner import DeepRunner
    from .search import SearchConfig

MIGRATIONS = [
    """
    CREATE TABLE collect_keys (
        collection TEXT PRIMARY KEY,
        spec_json TEXT NOT NULL,           -- what the key stands for (dataset, agents, search, budgets)
        created_at REAL NOT NULL
    );
    CREATE TABLE collect_runs (
        collection TEXT NOT NULL,
        problem_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        status TEXT NOT NULL,              -- searching | done | error
        verified INTEGER NOT NULL DEFAULT 0,
        pairs INTEGER NOT NULL DEFAULT 0,
        negatives INTEGER NOT NULL DEFAULT 0,
        result_json TEXT,
        updated_at REAL NOT NULL,
        PRIMARY KEY (collection, problem_id)
    );
    CREATE INDEX collect_runs_run ON collect_runs(run_id);
    """,
]
register_migrations("collect", MIGRATIONS)

# datasets that must never become training data (validation and test sets), and the sets that hold them
TRAINING_SETS = ("mbpp-train", "codecontests-train")
# search fields always in the key; any other field is in it only when it differs from SearchConfig's default
# (so a field added to the search later does not restart every collection)
KEY_SEARCH_FIELDS = ("rollouts", "width", "samples", "max_depth", "prune", "refine", "early_stop", "seed")
# runs that ended for a reason that says nothing about the problem: searched again next time
RETRY_STOPS = ("provider_",)


class CollectError(BdcError):
    """A collection cannot go on (the agents keep failing)."""

    exit_code = 12


# ---- which problems --------------------------------------------------------------------------------------


def refuse_validation(dataset: str) -> None:
    """Raise unless ``dataset`` is a training set; validation and test problems never become training data."""
    name, _, arg = dataset.partition(":")
    name = name.strip().lower()
    if name in TRAINING_SETS and not arg:
        return
    if name in ("codecontests", "apps") and arg:
        return  # a file of the user's: the fixed validation ids are dropped from it (training_problems)
    if name.startswith("humaneval") or name.endswith("-val"):
        raise DatasetError(
            f"'{dataset}' is a validation or test set: its problems must never become training data, so "
            f"`bdc collect` refuses it; use {' or '.join(TRAINING_SETS)}."
        )
    if name in ("mbpp", "codecontests"):
        raise DatasetError(
            f"'{dataset}' holds the fixed validation problems, which must never become training data; "
            f"use {name}-train."
        )
    raise DatasetError(
        f"`bdc collect` runs on training sets only: {', '.join(TRAINING_SETS)}, not '{dataset}'."
    )


def training_problems(dataset: str, limit: int | None = None) -> list[Problem]:
    """The training problems of ``dataset`` (refused unless a training set), first ``limit`` of them; a
    user's ``codecontests:PATH`` / ``apps:PATH`` file loses any problem with a fixed validation id.

    Each statement is the text the solver is shown at answer time (:func:`solver_text`: an MBPP stub gets its
    public example test, as the original MBPP prompt has it; a stdin problem gets the I/O note), so the agents
    see the unambiguous task and the exported pairs train on exactly the prompt the app will answer."""
    from dataclasses import replace

    from ..evaluation.datasets import load_dataset
    from ..evaluation.problem_text import solver_text
    from ..evaluation.splits import is_validation_id

    refuse_validation(dataset)
    problems = [
        replace(p, statement=solver_text(p)) for p in load_dataset(dataset) if not is_validation_id(p.id)
    ]
    return problems if limit is None else problems[: max(limit, 0)]


# ---- the collection key and its rows -----------------------------------------------------------------------


# Bumped when what the agents are shown changes (2: the solver's text, with MBPP's example test), so a rerun
# starts a new collection instead of mixing prompts.
PROBLEM_TEXT_VERSION = 2


def key_spec(
    dataset: str,
    agents: Sequence[AgentSpec],
    config: SearchConfig,
    *,
    max_calls: int,
    budget_usd: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a collection is: its key is the sha256 of this (see :data:`KEY_SEARCH_FIELDS`)."""
    from .search import SearchConfig

    defaults = asdict(SearchConfig())
    search = {
        k: v for k, v in asdict(config).items() if k in KEY_SEARCH_FIELDS or defaults.get(k, object()) != v
    }
    return {
        "dataset": dataset.strip().lower(),
        "agents": [f"{a.kind}:{a.model}" for a in agents],
        "search": search,
        "budgets": {"max_calls": max_calls, "budget_usd": budget_usd},
        "problem_text": PROBLEM_TEXT_VERSION,
        **(extra or {}),
    }


def collection_key(spec: dict[str, Any]) -> str:
    text = json.dumps(spec, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def register_key(store: RunStore, key: str, spec: dict[str, Any]) -> None:
    store.conn.execute(
        "INSERT OR IGNORE INTO collect_keys(collection, spec_json, created_at) VALUES (?,?,?)",
        (key, json.dumps(spec, sort_keys=True), time.time()),
    )


def _put_row(
    store: RunStore,
    key: str,
    problem_id: str,
    run_id: str,
    status: str,
    *,
    verified: bool = False,
    pairs: int = 0,
    negatives: int = 0,
    result: dict[str, Any] | None = None,
) -> None:
    """One statement, so atomic on its own (the connection is in autocommit mode)."""
    store.conn.execute(
        "INSERT INTO collect_runs(collection, problem_id, run_id, status, verified, pairs, negatives,"
        " result_json, updated_at) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(collection, problem_id) DO UPDATE SET"
        " run_id = excluded.run_id, status = excluded.status, verified = excluded.verified,"
        " pairs = excluded.pairs, negatives = excluded.negatives, result_json = excluded.result_json,"
        " updated_at = excluded.updated_at",
        (
            key,
            problem_id,
            run_id,
            status,
            int(verified),
            pairs,
            negatives,
            json.dumps(result) if result is not None else None,
            time.time(),
        ),
    )


def rows(store: RunStore, key: str) -> dict[str, dict[str, Any]]:
    """problem id -> its row in collection ``key``."""
    out = {}
    for r in store.conn.execute("SELECT * FROM collect_runs WHERE collection = ?", (key,)).fetchall():
        out[r["problem_id"]] = dict(r) | {
            "result": json.loads(r["result_json"]) if r["result_json"] else None
        }
    return out


def collect_run_ids(store: RunStore) -> set[str]:
    """Every deep run a collection started: their export is the collection's (verified ones), never
    ``sync_store_trajectories``' (which would trust the public tests alone)."""
    return {r[0] for r in store.conn.execute("SELECT run_id FROM collect_runs").fetchall()}


# ---- verification ----------------------------------------------------------------------------------------


class Verifier:
    """Runs programs on a problem's public + private tests in the sandbox; remembers each program's answer."""

    def __init__(self, sandbox: Any, problem: Problem) -> None:
        self.sandbox, self.problem = sandbox, problem
        self.seen: dict[str, str] = {}
        self.public_rate: dict[str, float] = {}  # share of the public tests each checked program passed

    def failure(self, code: str) -> str:
        """Empty when ``code`` passes every public and every private test; else why not (one phrase)."""
        if code not in self.seen:
            self.seen[code] = self._check(code)
        return self.seen[code]

    def _check(self, code: str) -> str:
        p = self.problem
        if not code.strip():
            return "there is no program"
        for name, tests in (("public", p.public_tests), ("private", p.private_tests)):
            if not tests:
                return f"the problem has no {name} tests to verify it on"
            verdicts = self.sandbox.run_tests(code, tuple(tests), checker=p.checker)
            passed = sum(v.passed for v in verdicts)
            if name == "public":
                self.public_rate[code] = round(passed / len(tests), 4)
            if passed < len(tests):
                return f"it fails the {name} tests ({passed}/{len(tests)} pass)"
        return ""


def split_lines(
    lines: Sequence[dict[str, Any]], verifier: Verifier, run_failure: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training lines, negatives): a line trains only when the run is verified, the export calls it a
    verified pair, and its program passes the private tests too."""
    keep, negatives = [], []
    for line in lines:
        why = line.get("rejected", "") if not line.get("verified") else ""
        if not why and run_failure:
            why = f"the run is not verified: its final program {run_failure.removeprefix('it ')}"
        if not why:
            failure = verifier.failure(line["solution"])
            why = f"the node's program {failure.removeprefix('it ')}" if failure else ""
        if why:
            negatives.append(line | {"verified": False, "negative": True, "rejected": why})
        else:
            keep.append(line)
    return keep, negatives


# ---- one problem ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    dataset: str
    key: str
    problem: Problem


@dataclass(frozen=True)
class Spent:
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0


@dataclass(frozen=True)
class Outcome:
    job: Job
    run_id: str
    status: str  # done | error | busy | cancelled
    verified: bool = False
    pairs: int = 0
    negatives: int = 0
    spent: Spent = Spent()
    searched: bool = False  # False: a finished run was only verified (after a kill), or nothing ran
    detail: str = ""


@dataclass
class Options:
    max_calls: int = 12
    budget_usd: float = 1.0
    max_tokens_total: int = 0
    wall_clock_s: float = 0.0
    config: SearchConfig | None = None  # None: the runner's settings
    parallel: int = 1
    out_dir: Path = Path("trajectories")
    negatives_dir: Path | None = None


def _search(
    runner: DeepRunner,
    job: Job,
    agents: Sequence[AgentSpec],
    opts: Options,
    consent: Callable[[RunStore, str], None],
    cancel: CancelToken,
    known: dict[str, Any] | None,
) -> tuple[str, dict[str, Any] | None, bool]:
    """(run id, the run's stored result or None when busy elsewhere, whether a search ran now)."""
    from .llm import Budgets

    store = runner.store
    if known is not None:
        try:
            row = store.get_run(known["run_id"])
        except StoreError:
            row = None  # killed between recording the id and creating the run
        if row is not None and row.status == "finished" and row.result is not None:
            if not str(row.stopped_by or "").startswith(RETRY_STOPS):
                return row.run_id, row.result, False  # searched before a kill; verify only
        elif row is not None:
            if pid_alive(row.pid):
                return row.run_id, None, False
            consent(store, row.run_id)
            result = runner.resume(row.run_id, cancel=cancel)
            return row.run_id, result.as_record(), True
    run_id = new_run_id()
    _put_row(store, job.key, job.problem.id, run_id, "searching")
    consent(store, run_id)
    budgets = Budgets(
        max_calls=opts.max_calls,
        budget_usd=opts.budget_usd,
        max_tokens_total=opts.max_tokens_total,
        wall_clock_s=opts.wall_clock_s,
    )
    result = runner.run(
        job.problem, list(agents), budgets, cancel=cancel, config=opts.config, run_id=run_id, generate_tests=0
    )
    return run_id, result.as_record(), True


def collect_one(
    runner: DeepRunner,
    job: Job,
    agents: Sequence[AgentSpec],
    opts: Options,
    *,
    sandbox: Any,
    consent: Callable[[RunStore, str], None],
    cancel: CancelToken,
    known: dict[str, Any] | None = None,
) -> Outcome:
    """Search (or resume, or only verify) one problem, export what is verified, and mark it done."""
    store = runner.store
    run_id, result, searched = _search(runner, job, agents, opts, consent, cancel, known)
    if result is None:
        return Outcome(job, run_id, "busy", detail="another process is searching it")
    calls = int(result.get("calls", 0)) if searched else 0
    tokens_in = int(result.get("tokens_in", 0)) if searched else 0
    tokens_out = int(result.get("tokens_out", 0)) if searched else 0
    spent = Spent(calls, tokens_in, tokens_out)
    stopped_by = str(result.get("stopped_by", ""))
    if stopped_by == "cancelled":
        return Outcome(job, run_id, "cancelled", searched=searched, spent=spent)
    if stopped_by.startswith(RETRY_STOPS):
        _put_row(store, job.key, job.problem.id, run_id, "error", result=_summary(result, "", 0))
        return Outcome(
            job, run_id, "error", searched=searched, detail=str(result.get("detail", "")), spent=spent
        )
    verifier = Verifier(sandbox, job.problem)
    failure = verifier.failure(str(result.get("best_code", "")))
    if not failure and float(result.get("public_pass_rate", 0.0)) < 1.0:
        failure = "it did not pass every public test during the search"
    lines = trajectories(store, run_id, include_negatives=True)
    keep, negatives = split_lines(lines, verifier, failure)
    # always written, empty when nothing is verified: the run is exported, and by this module only
    atomic.write_text(opts.out_dir / f"{safe_name(run_id)}.jsonl", _jsonl(store, keep))
    if opts.negatives_dir is not None:
        atomic.write_text(opts.negatives_dir / f"{safe_name(run_id)}.jsonl", _jsonl(store, negatives))
    verified = not failure
    _put_row(
        store,
        job.key,
        job.problem.id,
        run_id,
        "done",
        verified=verified,
        pairs=len(keep),
        negatives=len(negatives),
        result=_summary(result, failure, len(keep)),
    )
    return Outcome(
        job,
        run_id,
        "done",
        verified=verified,
        pairs=len(keep),
        negatives=len(negatives) if opts.negatives_dir is not None else 0,
        searched=searched,
        detail=failure,
        spent=spent,
    )


def _jsonl(store: RunStore, lines: Sequence[dict[str, Any]]) -> str:
    return store.scrub("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines))


def _summary(result: dict[str, Any], failure: str, pairs: int) -> dict[str, Any]:
    keys = (
        "public_pass_rate",
        "calls",
        "tokens_in",
        "tokens_out",
        "stopped_by",
        "nodes",
        "pruned",
        "refined",
    )
    return {k: result.get(k) for k in keys} | {"failure": failure, "pairs": pairs}


# ---- the collection ----------------------------------------------------------------------------------------


@dataclass
class Tally:
    total: int = 0
    already_done: int = 0
    unusable: int = 0  # no public or no private tests: nothing could be searched or verified
    attempted: int = 0  # problems finished (done or error) in this session
    searched: int = 0
    verified: int = 0
    errors: int = 0
    busy: int = 0
    cancelled: int = 0
    pairs: int = 0
    negatives: int = 0
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    started: float = 0.0
    per_dataset: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, o: Outcome) -> None:
        if o.status in ("done", "error"):
            self.attempted += 1
        self.searched += int(o.searched)
        self.verified += int(o.verified)
        self.errors += int(o.status == "error")
        self.busy += int(o.status == "busy")
        self.cancelled += int(o.status == "cancelled")
        self.pairs += o.pairs
        self.negatives += o.negatives
        self.calls += o.spent.calls
        self.tokens_in += o.spent.tokens_in
        self.tokens_out += o.spent.tokens_out
        d = self.per_dataset.setdefault(o.job.dataset, {"attempted": 0, "verified": 0, "pairs": 0})
        d["attempted"] += int(o.status in ("done", "error"))
        d["verified"] += int(o.verified)
        d["pairs"] += o.pairs


def per_hour(n: int, seconds: float) -> float:
    return n * 3600.0 / seconds if seconds > 0 else 0.0


def eta(remaining: int, rate_per_hour: float) -> str:
    if remaining <= 0:
        return "0m"
    if rate_per_hour <= 0:
        return "?"
    minutes = round(remaining / rate_per_hour * 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def progress_line(t: Tally, o: Outcome, now: float) -> str:
    elapsed = now - t.started
    rate = per_hour(t.attempted, elapsed)
    done = t.already_done + t.unusable + t.attempted
    if o.status == "done":
        what = f"verified, {o.pairs} pairs" if o.verified else f"not verified ({o.detail})"
    else:
        what = o.status + (f" ({o.detail})" if o.detail else "")
    return (
        f"[{done}/{t.total}] {o.job.problem.id}: {what}, {o.spent.calls} calls · verified {t.verified}/{t.attempted}"
        f" · {rate:.1f} problems/h · ETA {eta(t.total - done - t.busy, rate)}"
    )


def collect(
    jobs: Sequence[Job],
    agents: Sequence[AgentSpec],
    *,
    store: RunStore,
    make_runner: Callable[[], DeepRunner],
    sandbox: Any,
    opts: Options,
    consent: Callable[[RunStore, str], None] = lambda store, run_id: None,
    on_progress: Callable[[str], None] = lambda s: None,
    clock: Callable[[], float] = time.monotonic,
    max_errors_in_a_row: int | None = None,
) -> dict[str, Any]:
    """Run every job not done yet, ``opts.parallel`` at a time; return the report (see the module doc).

    ``store`` is the caller's connection (reads which problems are done); each worker gets its own runner
    from ``make_runner`` (its own store connection) and keeps it. An unexpected exception, or Ctrl-C, stops
    the collection: the problems in flight are cancelled at their next call (resumable) and it re-raises."""
    t = Tally(total=len(jobs), started=clock())
    known: dict[str, dict[str, dict[str, Any]]] = {}
    todo: list[Job] = []
    for job in jobs:
        if job.key not in known:
            known[job.key] = rows(store, job.key)
        row = known[job.key].get(job.problem.id)
        if row is not None and row["status"] == "done":
            t.already_done += 1
        elif not job.problem.public_tests or not job.problem.private_tests:
            t.unusable += 1
        else:
            todo.append(job)
    on_progress(
        f"collect: {len(todo)} problems to go, {t.already_done} done before"
        + (f", {t.unusable} without public or private tests (skipped)" if t.unusable else "")
        + f", {opts.parallel} in flight"
    )
    cancel = CancelToken()
    runners = RunnerPool(make_runner)

    def work(job: Job) -> Outcome:
        with runners.lease() as runner:
            return collect_one(
                runner,
                job,
                agents,
                opts,
                sandbox=sandbox,
                consent=consent,
                cancel=cancel,
                known=known[job.key].get(job.problem.id),
            )

    errors_in_a_row, stopped = 0, ""
    limit = max_errors_in_a_row if max_errors_in_a_row is not None else max(3, 2 * opts.parallel)
    pending = iter(todo)
    running: set[Future[Outcome]] = set()
    pool = ThreadPoolExecutor(max(1, opts.parallel), thread_name_prefix="bdc-collect")
    try:
        while True:
            while not stopped and len(running) < max(1, opts.parallel):
                nxt = next(pending, None)
                if nxt is None:
                    break
                running.add(pool.submit(work, nxt))
            if not running:
                break
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                o = f.result()  # an unexpected error stops the collection (finally: cancel the rest)
                t.add(o)
                errors_in_a_row = errors_in_a_row + 1 if o.status == "error" else 0
                if errors_in_a_row >= limit and not stopped:
                    stopped = (
                        f"the agents failed {errors_in_a_row} problems in a row (last: {o.detail or 'error'})"
                    )
                on_progress(progress_line(t, o, clock()))
    finally:
        if running:
            cancel.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        runners.close()
    return report(t, jobs, store, opts, clock() - t.started, stopped)


def report(
    t: Tally, jobs: Sequence[Job], store: RunStore, opts: Options, wall_s: float, stopped: str
) -> dict[str, Any]:
    n = max(t.searched, 1)
    keys = sorted({(j.dataset, j.key) for j in jobs})
    all_rows = [r for _, k in keys for r in rows(store, k).values()]
    return {
        "problems": t.total,
        "already_done": t.already_done,
        "unusable": t.unusable,
        "attempted": t.attempted,
        "searched": t.searched,
        "verified": t.verified,
        "errors": t.errors,
        "busy": t.busy,
        "cancelled": t.cancelled,
        "pairs_written": t.pairs,
        "negatives_written": t.negatives,
        "wall_s": round(wall_s, 1),
        "problems_per_hour": round(per_hour(t.attempted, wall_s), 2),
        "calls": t.calls,
        "tokens_in": t.tokens_in,
        "tokens_out": t.tokens_out,
        "calls_per_problem": round(t.calls / n, 2),
        "tokens_per_problem": round((t.tokens_in + t.tokens_out) / n, 1),
        "per_dataset": t.per_dataset,
        "collections": {d: k for d, k in keys},
        "collection_done": sum(r["status"] == "done" for r in all_rows),
        "collection_verified": sum(bool(r["verified"]) for r in all_rows if r["status"] == "done"),
        "collection_pairs": sum(int(r["pairs"]) for r in all_rows if r["status"] == "done"),
        "out_dir": str(opts.out_dir),
        "negatives_dir": str(opts.negatives_dir) if opts.negatives_dir is not None else None,
        "stopped": stopped or None,
    }


def summary(rep: dict[str, Any]) -> str:
    """The report as the few lines ``bdc collect`` prints."""
    lines = [
        f"collected: {rep['attempted']} problems attempted ({rep['searched']} searched), {rep['verified']} verified, "
        f"{rep['pairs_written']} pairs written, {rep['errors']} provider errors"
        + (f", {rep['busy']} busy in another process" if rep["busy"] else ""),
        f"{rep['wall_s']} s, {rep['problems_per_hour']} problems/h, {rep['calls_per_problem']} calls and "
        f"{rep['tokens_per_problem']:.0f} tokens per searched problem",
        f"collection so far: {rep['collection_done']} done, {rep['collection_verified']} verified, "
        f"{rep['collection_pairs']} pairs; {rep['already_done']} skipped as done before; lines in {rep['out_dir']}",
    ]
    if rep["negatives_dir"]:
        lines.append(f"{rep['negatives_written']} negatives in {rep['negatives_dir']} (never training pairs)")
    if rep["stopped"]:
        lines.append(f"stopped early: {rep['stopped']}")
    return "\n".join(lines)
