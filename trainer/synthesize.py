"""New training problems, written and verified locally: self-instruct with an execution filter.

``python -m trainer.synthesize --gguf PATH --per-seed 3 --out FILE.jsonl``

Why: the offline pool has 110 MBPP training problems and 94 of them already have verified programs, so more
sampling adds programs, not problems. Here a local model (the stronger 1.5B in practice) is shown one training
problem as an example and asked for a NEW exercise of the same kind: a one-sentence task, a complete solution
and three ``assert`` tests. An exercise becomes a training line only when

* it parses: a ``TASK:`` sentence, a solution that defines the function, >= ``min_tests`` distinct asserts
  that call it;
* its solution passes every one of its tests in the sandbox (the first assert is the public example the
  solver is shown, the rest are private, exactly as an MBPP problem);
* it is not a validation or test problem in disguise: its function name is not one of ``mbpp-val``'s or
  HumanEval's, and its task sentence is less than ``max_similarity`` (cosine, the app's encoder; 0.75, since 0.85 let through HumanEval's ``fib``
  and ``is_palindrome`` and an ``mbpp-val`` task in other words) from every
  one of theirs;
* it is new: not the same function, program or task (cosine >= 0.9) as an exercise already kept.

Weakness, said plainly: the tests are written by the same model as the solution, so an exercise whose
solution and tests share a misconception passes. The lines are a separately labelled source
(``source: selfinstruct:...``, ``problem_id: selfinstruct/<seed>/<i>``) so a run can use or drop them.

Resumable like ``trainer.sample`` (one progress line per seed problem; the output is rebuilt from it).
"""

from __future__ import annotations

import ast
import contextlib
import json
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bdc_assistant import atomic
from bdc_assistant.errors import ConfigError
from bdc_assistant.types import Problem, TestCase

from .sample import SampleConfig, _jsonl, _open_solver, _resume, append_record, cli_main, program_key

SYSTEM = (
    "You write small, self-contained Python programming exercises, each with a correct solution and tests."
)

PROMPT = """Here is an example exercise:

{example}

Write a NEW exercise of similar difficulty on a different topic (not a rewording of the example): one Python \
function. Answer in exactly this format and nothing else:

TASK: Write a function to <what the function does, in one sentence>.
```python
<the complete solution: any imports, then the function>
```
```python
assert <function>(<arguments>) == <expected value>
assert <function>(<arguments>) == <expected value>
assert <function>(<arguments>) == <expected value>
```"""


@dataclass(frozen=True)
class SynthConfig:
    gguf: str = ""  # empty: the embedded base
    dataset: str = "mbpp-train"  # the seed problems shown as examples (training problems only)
    per_seed: int = 3
    temperature: float = 0.8
    top_p: float = 0.95
    seed: int = 0
    max_tokens: int = 512
    min_tests: int = 3
    max_similarity: float = 0.75  # 0.85 let through HumanEval's fib and is_palindrome and an mbpp-val task
    timeout_s: float = 4.0
    threads: int = 0
    limit: int = 0

    def __post_init__(self) -> None:
        if self.per_seed < 1 or self.min_tests < 2 or not 0 < self.max_similarity <= 1 or self.limit < 0:
            raise ConfigError(
                "trainer.synthesize needs --per-seed >= 1, --min-tests >= 2, 0 < --max-similarity <= 1 and "
                f"--limit >= 0 (got {self.per_seed}, {self.min_tests}, {self.max_similarity:g}, {self.limit})."
            )


@dataclass(frozen=True)
class Exercise:
    task: str  # "Write a function to ..."
    entry_point: str
    solution: str
    tests: tuple[str, ...]  # assert lines, each calling entry_point

    @property
    def stub(self) -> str:
        """What the solver is shown, as an MBPP stub: the solution's imports, the signature, the task."""
        tree = ast.parse(self.solution)
        head = [
            ast.get_source_segment(self.solution, n) or ""
            for n in tree.body
            if isinstance(n, ast.Import | ast.ImportFrom)
        ]
        fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == self.entry_point)
        signature = _signature_only(fn, self.solution)
        lines = [*head, signature, "    '''", f"    {self.task}", "    '''"]
        return "\n".join(lines) + "\n"

    def problem(self, problem_id: str) -> Problem:
        stub = self.stub
        public = TestCase(
            input=f"candidate = {self.entry_point}\n{self.tests[0]}\n", kind="call", origin="statement"
        )
        body = "\n".join(f"    {t}" for t in self.tests)
        private = TestCase(
            input=f"def check(candidate):\n{body}\n\n\ncheck({self.entry_point})\n",
            kind="call",
            origin="generated",
        )
        return Problem(
            id=problem_id,
            statement=stub,
            kind="call",
            entry_point=self.entry_point,
            starter_code=stub,
            public_tests=(public,),
            private_tests=(private,),
            source="selfinstruct",
        )


def _signature_only(fn: ast.FunctionDef, source: str) -> str:
    """The ``def`` line(s) of ``fn`` joined into one line (a signature split over lines, or with a docstring
    or body on the following lines)."""
    lines = source.splitlines()[fn.lineno - 1 : fn.body[0].lineno - 1]
    text = " ".join(line.strip() for line in lines)
    text = text.split('"""', 1)[0].split("'''", 1)[0].strip()
    return text if text.endswith(":") else f"def {fn.name}({ast.unparse(fn.args)}):"


_TASK = re.compile(r"^\s*\**TASK:?\**:?\s*(.+)$", re.MULTILINE)
_BLOCK = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)


def parse_exercise(text: str, *, min_tests: int = 3) -> Exercise | None:
    """The exercise in a model's answer, or ``None`` when it is not one (see the module doc).

    Lenient about layout (one code block or two): in the answer's code, top-level ``assert`` lines that call
    the function are the tests, imports and functions are the solution, anything else (prints, example calls)
    is dropped; the function is the last one defined."""
    task_m = _TASK.search(text)
    blocks = _BLOCK.findall(text)
    if not task_m or not blocks:
        return None
    task = " ".join(task_m.group(1).split()).strip("*` ")
    if not task.lower().startswith("write a") or len(task) > 300:
        return None
    parts: list[str] = []
    asserts: list[str] = []
    for block in blocks:
        try:
            tree = ast.parse(block)
        except SyntaxError:
            return None
        for node in tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom | ast.FunctionDef):
                parts.append(ast.get_source_segment(block, node) or "")
            elif isinstance(node, ast.Assert):
                asserts.append(ast.get_source_segment(block, node) or ast.unparse(node))
    funcs = [n for n in ast.parse("\n\n".join(parts)).body if isinstance(n, ast.FunctionDef)]
    if not funcs:
        return None
    name = funcs[-1].name
    tests: list[str] = []
    for line in asserts:
        called = {
            c.func.id
            for c in ast.walk(ast.parse(line))
            if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
        }
        if line not in tests and name in called:
            tests.append(line)
    if len(tests) < min_tests:
        return None
    solution = "\n".join(p if p.startswith(("import", "from")) else "\n" + p for p in parts).strip() + "\n"
    return Exercise(task=task, entry_point=name, solution=solution, tests=tuple(tests))


def example_exercise(seed: Problem) -> str:
    """A training problem written in the answer format (its task, reference solution and tests): the one-shot
    example the model imitates."""
    asserts = [
        ln.strip() for t in seed.all_tests for ln in t.input.splitlines() if ln.strip().startswith("assert")
    ]
    name = seed.entry_point or ""
    tests = "\n".join(dict.fromkeys(a.replace("candidate(", f"{name}(") for a in asserts))
    return (
        f"TASK: {task_sentence(seed.starter_code or seed.statement)}\n```python\n{(seed.reference_solution or '').strip()}\n```\n"
        f"```python\n{tests}\n```"
    )


def task_sentence(statement: str) -> str:
    """The task in words of a stub/prompt: its function's docstring, first paragraph, squashed."""
    from bdc_assistant.evaluation.problem_text import function_docstring

    doc = function_docstring(statement) or statement
    return " ".join(doc.split("\n\n")[0].split())


class Guard:
    """Keeps validation and test problems out, and repeats of kept exercises."""

    def __init__(
        self,
        encoder: Any,
        forbidden: Sequence[Problem],
        max_similarity: float,
        max_repeat_similarity: float = 0.9,
    ) -> None:
        self.encoder, self.max_similarity = encoder, max_similarity
        self.names = {p.entry_point for p in forbidden if p.entry_point}
        self.forbidden = encoder.embed([task_sentence(p.statement) for p in forbidden])
        self.kept_tasks: set[str] = set()
        self.kept_names: set[str] = set()
        self.kept_programs: set[str] = set()
        self.kept_vectors: list[Any] = []
        self.max_repeat_similarity = max_repeat_similarity
        self._vectors: dict[
            str, Any
        ] = {}  # task -> embedding: refusal() and keep() of one exercise embed once

    def _vector(self, task: str) -> Any:
        if task not in self._vectors:
            self._vectors[task] = self.encoder.embed([task])[0]
        return self._vectors[task]

    def refusal(self, ex: Exercise) -> str:
        """Empty when ``ex`` may be kept, else why not."""
        if ex.entry_point in self.names:
            return "a validation/test function name"
        if ex.entry_point in self.kept_names or ex.task.lower() in self.kept_tasks:
            return "a repeat"
        if program_key(ex.solution) in self.kept_programs:
            return "a repeat"
        v = self._vector(ex.task)
        if self.kept_vectors and max(float(k @ v) for k in self.kept_vectors) >= self.max_repeat_similarity:
            return "a repeat"  # "the maximum value in a list" after "the maximum element of a list"
        sim = float(max(self.forbidden @ v)) if len(self.forbidden) else 0.0
        if sim >= self.max_similarity:
            return f"too close to a validation/test problem (cosine {sim:.2f})"
        return ""

    def keep(self, ex: Exercise) -> None:
        self.kept_names.add(ex.entry_point)
        self.kept_tasks.add(ex.task.lower())
        self.kept_programs.add(program_key(ex.solution))
        self.kept_vectors.append(self._vector(ex.task))


def forbidden_problems() -> list[Problem]:
    """What no training line may be: the validation split and HumanEval."""
    from bdc_assistant.evaluation.datasets import load_dataset

    return [*load_dataset("mbpp-val"), *load_dataset("humaneval")]


def synthesize_seed(
    gen: Any, sandbox: Any, guard: Guard, seed: Problem, cfg: SynthConfig, policy: str
) -> dict[str, Any]:
    """The seed's progress record; its training lines under ``"lines"``."""
    from bdc_assistant.backends.base import GenerationParams
    from bdc_assistant.deep.collect import Verifier
    from bdc_assistant.evaluation.problem_text import solver_text

    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": PROMPT.format(example=example_exercise(seed))},
    ]
    lines: list[dict[str, Any]] = []
    why: dict[str, int] = {}
    t0 = time.monotonic()
    for i in range(cfg.per_seed):
        params = GenerationParams(
            max_tokens=cfg.max_tokens, temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed + i
        )
        text = "".join(gen.chat(messages, params))
        ex = parse_exercise(text, min_tests=cfg.min_tests)
        if ex is None:
            reason = "not an exercise"
        elif ex.entry_point == seed.entry_point:
            reason = "a copy of its example"
        else:
            reason = guard.refusal(ex)
        if not reason and ex is not None:
            problem = ex.problem(f"selfinstruct/{seed.id}/{i}")
            reason = "fails its own tests" if Verifier(sandbox, problem).failure(ex.solution) else ""
        if reason or ex is None:
            key = reason.split(" (")[0]
            why[key] = why.get(key, 0) + 1
            continue
        guard.keep(ex)
        lines.append(
            {
                "problem_id": problem.id,
                "problem": solver_text(problem),
                "thought": "",
                "solution": ex.solution,
                "public_pass_rate": 1.0,
                "source": f"selfinstruct:{cfg.dataset}:t{cfg.temperature:g}:s{cfg.seed + i}",
                "policy": policy,
                "verified": True,
                "task": ex.task,
                "entry_point": ex.entry_point,
                "tests": list(ex.tests),
            }
        )
    return {
        "problem_id": seed.id,
        "attempts": cfg.per_seed,
        "kept": len(lines),
        "refused": why,
        "seconds": round(time.monotonic() - t0, 2),
        "lines": lines,
    }


def run(cfg: SynthConfig, out: Path, on_progress: Any = print) -> dict[str, Any]:
    from bdc_assistant.deep.collect import training_problems
    from bdc_assistant.encoder import default_encoder
    from bdc_assistant.sandbox import sandbox_from_settings

    seeds = training_problems(cfg.dataset, cfg.limit or None)
    with contextlib.ExitStack() as closing:  # on the way out: the sandbox, then the solver
        solver, settings = _open_solver(  # a model that will not open leaves no file behind
            SampleConfig(gguf=cfg.gguf, seed=cfg.seed, timeout_s=cfg.timeout_s, threads=cfg.threads),
            out.parent,
        )
        closing.callback(solver.close)
        gen = solver.generator
        gen.set_customization(None)
        policy = f"local:{gen.model_id}"
        guard = Guard(default_encoder(settings), forbidden_problems(), cfg.max_similarity)
        out.parent.mkdir(parents=True, exist_ok=True)
        progress_file = out.with_name(out.name + ".progress.jsonl")
        done = _resume(progress_file, out)
        if done:
            rescreen(done, guard, progress_file, out)
        sandbox = sandbox_from_settings(settings)
        closing.callback(sandbox.close)
        todo = [s for s in seeds if s.id not in done]
        t0 = time.monotonic()
        for n, seed in enumerate(todo, 1):
            record = synthesize_seed(gen, sandbox, guard, seed, cfg, policy)
            append_record(progress_file, out, record)
            done[seed.id] = record
            rate = n * 3600 / max(time.monotonic() - t0, 1e-9)
            kept = sum(r["kept"] for r in done.values())
            on_progress(
                f"[{len(done)}/{len(seeds)}] {seed.id}: kept {record['kept']}/{cfg.per_seed} "
                f"{record['refused'] or ''} · {kept} exercises · {rate:.1f} seeds/h"
            )
    wall = time.monotonic() - t0
    recs = list(done.values())
    refused: dict[str, int] = {}
    for r in recs:
        for k, v in r["refused"].items():
            refused[k] = refused.get(k, 0) + v
    summary = {
        "config": asdict(cfg) | {"gguf": Path(cfg.gguf).name},  # the file, not where it lies on this machine
        "policy": policy,
        "seeds": len(seeds),
        "seeds_done": len(recs),
        "attempts": sum(r["attempts"] for r in recs),
        "exercises": sum(r["kept"] for r in recs),
        "refused": refused,
        "seconds_all_seeds": round(sum(r["seconds"] for r in recs), 1),  # generating + verifying, every run
        "seconds_this_run": round(wall, 1),
        "seeds_per_hour_this_run": round(len(todo) * 3600 / wall, 1) if wall > 0 and todo else None,
    }
    out.with_name(out.name + ".summary.json").write_text(
        json.dumps(summary, indent=2) + "\n", encoding="utf-8"
    )
    return summary


def rescreen(done: dict[str, dict[str, Any]], guard: Guard, progress_file: Path, out: Path) -> None:
    """A resumed run applies the current guard to what earlier runs kept, in their order: a line it refuses now
    (a stricter ``max_similarity``, a repeat) leaves the output and is counted in its seed's ``refused``."""
    for rec in done.values():
        kept = []
        for line in rec.get("lines", []):
            ex = Exercise(line["task"], line["entry_point"], line["solution"], tuple(line["tests"]))
            reason = guard.refusal(ex).split(" (")[0]
            if reason:
                rec["refused"][reason] = rec["refused"].get(reason, 0) + 1
                continue
            guard.keep(ex)
            kept.append(line)
        rec["lines"], rec["kept"] = kept, len(kept)
    atomic.write_text(progress_file, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in done.values()))
    atomic.write_text(out, "".join(_jsonl(r["lines"]) for r in done.values()))


def main(argv: Sequence[str] | None = None) -> int:
    return cli_main(
        argv,
        "python -m trainer.synthesize",
        __doc__,
        SynthConfig,
        run,
        "JSONL of verified exercises (appended; resumable)",
    )


if __name__ == "__main__":
    raise SystemExit(main())
