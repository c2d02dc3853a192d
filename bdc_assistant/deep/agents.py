"""LLM policies: prompts (``assets/prompts/deep_*.txt``, versioned by their sha256) and tolerant parsing of
what models answer. :class:`LLMTeam` implements the search's ``Team`` port over a :class:`~.llm.Gateway`.

Agents of kind ``openai_completion`` (spec ``completion:URL:MODEL``: a base model such as the embedded
gemma-3-270m behind llama.cpp's ``/v1/completions``) get few-shot completion frames instead of chat turns
(``deep_*_completion.txt``): a plan continued one numbered step at a time (one thought per call), code
after an opening fence, a one-sentence review. Echoes of the prompt are dropped, never kept as thoughts.

Parsing never raises on model output: a JSON list that is fenced, has trailing commas, single quotes or
prose around it is still read; failing that, numbered or bulleted lines become thoughts (with no score, so
priors fall back to uniform) and the failure is counted in the meter.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from string import Template

from ..pysource import defines
from ..resources import assets_dir
from ..types import TestCase
from .llm import Call, Gateway
from .methods.base import BlockVerdict, render_failures
from .providers.base import ChatRequest
from .search import Failure, PublicProblem, State
from .tree import Proposal

NEUTRAL_VALUE = 0.5  # evaluate_state's answer when the model gives no usable score
SUMMARY_TOKENS = 384  # output cap of a critic's summary of an ill node (chat agents)
REGENERATE_TOKENS = 256  # output cap of an author's replacement thought (chat agents)

PROMPTS = (
    "system",
    "propose",
    "solve",
    "summarise",
    "regenerate",
    "testgen",
    "distinguish",
    "propose_completion",
    "solve_completion",
    "summarise_completion",
    "regenerate_completion",
    "reflect",
    "repair",
    "evaluate",
    "debug",
)


@lru_cache(maxsize=16)
def prompt(name: str) -> str:
    return (assets_dir() / "prompts" / f"deep_{name}.txt").read_text(encoding="utf-8")


def prompts_version() -> str:
    digest = hashlib.sha256()
    for name in PROMPTS:
        digest.update(prompt(name).encode())
    return digest.hexdigest()[:12]


def format_hint(problem: PublicProblem) -> str:
    if problem.kind == "call" or problem.entry_point:
        head = f"Implement the function `{problem.entry_point}`." if problem.entry_point else ""
        code = problem.starter_code.strip()
        starter = f"\nStart from:\n```python\n{code}\n```\n" if code and code not in problem.statement else ""
        return (head + starter).strip() + "\n"
    return "The program reads standard input and writes standard output.\n"


def render_thoughts(thoughts: Sequence[str]) -> str:
    return "\n".join(f"Step {i + 1}: {t}" for i, t in enumerate(thoughts)) or "(none yet)"


def with_notes(user: str, state: State) -> str:
    """A chat prompt plus the state's lessons from earlier failed programs (the baselines' memory); the
    prompt is unchanged when there are none, so MC-ToA's requests (and cache keys) stay as they were."""
    if not state.notes:
        return user
    lessons = "\n".join(f"- {n.strip()[:1500]}" for n in state.notes)
    return user.rstrip("\n") + f"\n\nLessons from earlier failed attempts:\n{lessons}\n"


# ---- tolerant parsing -------------------------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)(?:```|\Z)", re.S)


def extract_code(text: str) -> str:
    """The first ```python block, else the first fenced block, else the text itself (minus prose lines
    before the first line that looks like code)."""
    blocks = _FENCE.findall(text)
    for lang, body in blocks:
        if lang.lower() in ("python", "py", "python3"):
            return body.strip("\n") + "\n"
    if blocks:
        return blocks[0][1].strip("\n") + "\n"
    lines = text.strip("\n").splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^(def |class |import |from |[A-Za-z_][A-Za-z0-9_]* *=|for |while |if |print\()", line):
            return "\n".join(lines[i:]).strip("\n") + "\n"
    return text.strip() + "\n" if text.strip() else ""


def _loads_lenient(blob: str) -> object | None:
    for candidate in (blob, re.sub(r",\s*([\]}])", r"\1", blob)):
        try:
            return json.loads(candidate)
        except (json.JSONDecodeError, ValueError):
            pass
        try:
            return ast.literal_eval(candidate)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            pass
    return None


def _json_candidates(text: str) -> list[str]:
    out = [body for _, body in _FENCE.findall(text)]
    start = text.find("[")
    end = text.rfind("]")
    if start != -1 and end > start:
        out.append(text[start : end + 1])
    start = text.find("{")
    end = text.rfind("}")
    if start != -1 and end > start:
        out.append(text[start : end + 1])
    return out


_SCORE_KEYS = ("reasonableness", "score", "probability", "prob", "confidence")
_TEXT_KEYS = ("thought", "step", "clue", "text", "idea")


def _proposal_from(item: object) -> Proposal | None:
    if isinstance(item, str):
        return Proposal(item.strip()) if item.strip() else None
    if not isinstance(item, dict):
        return None
    text = None
    score = None
    for k, v in item.items():
        kl = str(k).lower()
        if any(s in kl for s in _SCORE_KEYS):
            try:
                score = float(v)
            except (TypeError, ValueError):
                score = None
        elif text is None and (any(t in kl for t in _TEXT_KEYS) or isinstance(v, str)):
            text = str(v).strip()
    return Proposal(text, score) if text else None


def parse_thoughts(text: str, width: int) -> tuple[list[Proposal], bool]:
    """Up to ``width`` proposals and whether the answer parsed as JSON."""
    for blob in _json_candidates(text):
        data = _loads_lenient(blob)
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), [data])
        if isinstance(data, list):
            props = [p for p in (_proposal_from(x) for x in data) if p is not None]
            if props:
                return props[:width], True
    lines = []
    for line in text.splitlines():
        m = re.match(r"^\s*(?:[-*•]|\d+[.)]|step\s*\d+\s*[:.)-])\s*(.+)$", line, re.I)
        if m and len(m.group(1).strip()) > 3:
            lines.append(Proposal(m.group(1).strip()[:1000]))
    if not lines and text.strip():
        first = text.strip().split("\n\n")[0].strip()
        lines = [Proposal(first[:1000])]
    return lines[:width], False


def clean_thought(text: str) -> str:
    text = re.sub(r"^(new step|step\s*\d*)\s*[:.-]\s*", "", text.strip(), flags=re.I)
    return text.split("\n\n")[0].strip().strip('"').strip()[:1000]


def parse_tests(text: str, problem: PublicProblem, limit: int) -> list[TestCase]:
    """Generated tests, marked ``origin="generated"``: {"input","output"} for stdio problems, or assert
    lines for call-based ones."""
    out: list[TestCase] = []
    for blob in _json_candidates(text):
        data = _loads_lenient(blob)
        if not isinstance(data, list):
            continue
        for item in data:
            if problem.kind == "call":
                code = (
                    item
                    if isinstance(item, str)
                    else (item.get("assert") if isinstance(item, dict) else None)
                )
                if isinstance(code, str) and code.strip().startswith("assert"):
                    out.append(TestCase(input=code.strip(), kind="call", origin="generated"))
            elif isinstance(item, dict) and "input" in item and "output" in item:
                out.append(TestCase(input=str(item["input"]), output=str(item["output"]), origin="generated"))
        if out:
            break
    return out[:limit]


def parse_inputs(text: str, problem: PublicProblem, limit: int) -> tuple[str, ...] | None:
    """Distinguishing inputs from a model's answer, or None when it has none usable (malformed).

    A JSON list (fenced, with prose around it, trailing commas or single quotes is still read) of strings,
    or of objects with an ``input`` field. Stdio problems: each is a whole stdin (a final newline is added).
    Call problems: each must be one Python expression (it is printed with ``repr``). Duplicates are dropped."""
    call = problem.kind == "call" or bool(problem.entry_point)
    for blob in _json_candidates(text):
        data = _loads_lenient(blob)
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), None)
        if not isinstance(data, list):
            continue
        out: list[str] = []
        for item in data:
            raw = item.get("input") if isinstance(item, dict) else item
            if not call and isinstance(raw, int | float) and not isinstance(raw, bool):
                raw = str(raw)  # a bare number is a whole stdin too
            if not isinstance(raw, str) or not raw.strip():
                continue
            value = raw.strip() if call else (raw if raw.endswith("\n") else raw + "\n")
            if call and not _is_expression(value):
                continue
            if value not in out:
                out.append(value)
        if out:
            return tuple(out[: max(limit, 1)])
    return None


def _has_code(text: str) -> bool:
    """A fenced block, or text that parses as Python: an apology in prose is not a program."""
    if _FENCE.search(text):
        return True
    try:
        ast.parse(extract_code(text))
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return bool(text.strip())


def _is_expression(text: str) -> bool:
    try:
        ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


_VALUE_KEYS = ("score", "value", "evaluation", "confidence", "probability")


def parse_value(text: str) -> float | None:
    """A self-evaluation in [0, 1] from ``{"score": x}`` (or value/evaluation/...), else the first number in
    the text. Scores in (1, 10] are read as tenths, negatives (the RethinkMCTS [-1, 1] scale) as 0; None when
    there is no number or it is out of range."""
    number: float | None = None
    for blob in _json_candidates(text):
        data = _loads_lenient(blob)
        if isinstance(data, dict):
            for k, v in data.items():
                if any(key in str(k).lower() for key in _VALUE_KEYS) and _is_number(v):
                    number = float(v)
                    break
        if number is not None:
            break
    if number is None:
        m = re.search(r"-?\d+(?:\.\d+)?", text)
        number = float(m.group(0)) if m else None
    if number is None or number > 10:
        return None
    if number > 1:
        number /= 10
    return max(0.0, number)


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


_TRUE = ("true", "correct", "yes", "ok", "right")
_FALSE = ("false", "wrong", "incorrect", "no", "error", "bug")


def _verdict(raw: object) -> bool | None:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    return True if word in _TRUE else False if word in _FALSE else None


def parse_verdicts(text: str) -> list[BlockVerdict] | None:
    """LDB's per-block verdicts from ``[{"block": 0, "correct": true, "explanation": "..."}]`` (fenced, with
    prose or trailing commas still read; ``verdict``/``reason`` accepted), or None when there is none."""
    for blob in _json_candidates(text):
        data = _loads_lenient(blob)
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), [data])
        if not isinstance(data, list):
            continue
        out: list[BlockVerdict] = []
        for i, item in enumerate(data):
            if not isinstance(item, dict):
                continue
            correct = _verdict(item.get("correct", item.get("verdict", "")))
            if correct is None:
                continue
            try:
                block = int(item.get("block", i))
            except (TypeError, ValueError):
                block = i
            why = str(item.get("explanation", item.get("reason", ""))).strip()[:500]
            out.append(BlockVerdict(block, correct, why))
        if out:
            return out
    return None


# ---- the team -----------------------------------------------------------------------------------------


class LLMTeam:
    """The search's policies, one per agent, all going through one gateway."""

    def __init__(
        self,
        gateway: Gateway,
        names: Sequence[str],
        *,
        max_tokens: int,
        temperature: float,
        seed: int | None = None,
    ) -> None:
        self.gateway = gateway
        self.names = tuple(names)
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed  # a resampled attempt's seed (deep-bench); None = the provider's default

    def _request(self, agent: str, user: str, max_tokens: int | None = None) -> ChatRequest:
        return ChatRequest(
            messages=(("system", prompt("system").strip()), ("user", user)),
            model=self.gateway.agents[agent].model,
            max_tokens=max_tokens or self.max_tokens,
            temperature=self.temperature,
            seed=self.seed,
        )

    def _completion(self, agent: str, text: str, max_tokens: int, stop: tuple[str, ...]) -> ChatRequest:
        return ChatRequest(
            messages=(("prompt", text),),
            model=self.gateway.agents[agent].model,
            max_tokens=max_tokens,
            temperature=self.temperature,
            stop=stop,
            seed=self.seed,
        )

    def _is_completion(self, agent: str) -> bool:
        """Base models (``completion:`` agents) get few-shot completion frames, not chat turns."""
        return self.gateway.agents[agent].kind == "openai_completion"

    def propose(self, state: State, width: int) -> list[list[Proposal]]:
        template = Template(prompt("propose")).safe_substitute(
            problem=state.problem.statement,
            format_hint=format_hint(state.problem),
            thoughts=render_thoughts(state.thoughts),
            width=width,
            step=len(state.thoughts) + 1,
        )
        user = with_notes(template, state)
        frame = (
            Template(prompt("propose_completion"))
            .safe_substitute(
                problem=state.problem.statement.strip(), plan=_numbered(state.thoughts, next_step=True)
            )
            .rstrip("\n")
        )  # end on "k." so the model writes step k
        calls = [
            Call(a, "propose", self._completion(a, frame, 96, ("\n", "###", "```")))
            if self._is_completion(a)
            else Call(a, "propose", self._request(a, user))
            for a in self.names
        ]
        out = []
        for call, resp in zip(calls, self.gateway.batch(calls), strict=True):
            if self._is_completion(call.agent):  # one greedy continuation = one thought
                line = resp.text.strip().splitlines()[0].strip() if resp.text.strip() else ""
                props, ok = ([Proposal(line)] if line else []), bool(line)
                source = frame
            else:
                props, ok = parse_thoughts(resp.text, width)
                source = template  # a thought that takes up a lesson (notes) is not an echo
            # small models often echo the prompt back: an echoed line is not a thought
            kept = [p for p in props if len(p.thought) > 3 and p.thought not in source]
            if not ok or len(kept) < len(props):
                self.gateway.meter.parse_failures += 1
            out.append(kept)
        return out

    def solve(self, state: State, samples: int) -> list[list[str]]:
        calls = [self._solve_call(a, state, s) for a in self.names for s in range(samples)]
        resps = self.gateway.batch([c for c, _ in calls])
        out: list[list[str]] = []
        for i, agent in enumerate(self.names):
            texts = [r.text for r in resps[i * samples : (i + 1) * samples]]
            out.append([self._code(agent, state, t, calls[i * samples][1]) for t in texts])
        return out

    def _solve_call(self, agent: str, state: State, sample: int) -> tuple[Call, str | None]:
        """One solve request for ``agent``, and the function-body frame a base model continues (if any)."""
        if not self._is_completion(agent):
            user = Template(prompt("solve")).safe_substitute(
                problem=state.problem.statement,
                format_hint=format_hint(state.problem),
                thoughts=render_thoughts(state.thoughts) if state.thoughts else "(solve it directly)",
            )
            return Call(agent, "solve", self._request(agent, with_notes(user, state)), sample=sample), None
        plan = _numbered(state.thoughts) or "1. Solve it directly."
        body_frame = _function_body_frame(state)
        frame = body_frame or Template(prompt("solve_completion")).safe_substitute(
            problem=state.problem.statement.strip(), plan=plan
        )
        stops = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(") if body_frame else ("\n```", "\n### ")
        req = self._completion(agent, frame, self.max_tokens, stops)
        return Call(agent, "solve", req, sample=sample), body_frame

    def _code(self, agent: str, state: State, text: str, body_frame: str | None) -> str:
        base = self._is_completion(agent)
        code = (body_frame or "") + text.rstrip() + "\n" if base else extract_code(text)
        return _with_starter(code, state.problem)

    def summarise(self, critic: str, state: State, code: str, failures: Sequence[Failure], trace: str) -> str:
        fails = render_failures(failures)
        values = dict(
            problem=state.problem.statement,
            thoughts=render_thoughts(state.thoughts),
            code=code.rstrip(),
            failures=fails or "(none)",
            trace=trace or "(not available)",
        )
        if self._is_completion(critic):
            frame = Template(prompt("summarise_completion")).safe_substitute(values).rstrip("\n")
            req = self._completion(critic, frame, 96, ("\n\n", "###"))
            (resp,) = self.gateway.batch([Call(critic, "summarise", req)])
            return ("The program is wrong because " + resp.text.strip())[:2000]
        user = Template(prompt("summarise")).safe_substitute(values)
        (resp,) = self.gateway.batch([Call(critic, "summarise", self._request(critic, user, SUMMARY_TOKENS))])
        return resp.text.strip()[:2000]

    def affords(self, phases: Sequence[str]) -> bool:
        """Whether the gateway's budgets allow calls of these phases (:meth:`~.llm.Gateway.affords`, each at
        the output cap this team asks of it)."""
        caps = {"summarise": SUMMARY_TOKENS, "regenerate": REGENERATE_TOKENS}
        return self.gateway.affords([(p, caps.get(p, self.max_tokens)) for p in phases])

    def regenerate(self, author: str, parent: State, ill_thought: str, summary: str) -> str:
        if self._is_completion(author):
            frame = (
                Template(prompt("regenerate_completion"))
                .safe_substitute(
                    problem=parent.problem.statement.strip(),
                    plan=_numbered(parent.thoughts),
                    step=len(parent.thoughts) + 1,
                    ill_thought=ill_thought,
                    summary=summary,
                )
                .rstrip("\n")
            )
            (resp,) = self.gateway.batch(
                [Call(author, "regenerate", self._completion(author, frame, 96, ("\n",)))]
            )
        else:
            user = (
                Template(prompt("regenerate"))
                .safe_substitute(
                    problem=parent.problem.statement,
                    thoughts=render_thoughts(parent.thoughts),
                    ill_thought=ill_thought,
                    summary=summary,
                )
                .rstrip("\n")
            )
            (resp,) = self.gateway.batch(
                [Call(author, "regenerate", self._request(author, user, REGENERATE_TOKENS))]
            )
        return clean_thought(resp.text) or ill_thought

    # ---- the Table-1 baselines' calls (:mod:`.methods`) ----------------------------------------------

    def reflect(self, agent: str, state: State, code: str, failures: Sequence[Failure]) -> str:
        """Reflexion's self-reflection: why ``code`` fails and what to do differently (one call). A base
        model continues the summarise frame ("The program is wrong because ...")."""
        values = dict(
            problem=state.problem.statement,
            format_hint=format_hint(state.problem),
            thoughts=render_thoughts(state.thoughts),
            code=code.rstrip(),
            failures=render_failures(failures) or "(none)",
            trace="(not available)",
        )
        if self._is_completion(agent):
            frame = Template(prompt("summarise_completion")).safe_substitute(values).rstrip("\n")
            (resp,) = self.gateway.batch(
                [Call(agent, "reflect", self._completion(agent, frame, 96, ("\n\n",)))]
            )
            text = "The program is wrong because " + resp.text.strip()
        else:
            user = Template(prompt("reflect")).safe_substitute(values)
            (resp,) = self.gateway.batch([Call(agent, "reflect", self._request(agent, user, 256))])
            text = resp.text.strip()
        if not resp.text.strip():
            self.gateway.meter.parse_failures += 1
            text = f"The previous program failed {len(failures)} public test(s); try another approach."
        return text[:2000]

    def repair(
        self, agent: str, state: State, code: str, failures: Sequence[Failure], notes: Sequence[str]
    ) -> str:
        """A new program from the previous one, its failing tests and ``notes`` (one call). A base model
        gets the solve frame with the last note as a plan step. No code in the answer: ``code`` again."""
        if self._is_completion(agent):
            hint = (f"Fix this mistake: {notes[-1].strip()[:300]}",) if notes else ()
            fixed = replace(state, thoughts=(*state.thoughts, *hint), notes=())
            call, body_frame = self._solve_call(agent, fixed, 0)
            (resp,) = self.gateway.batch([replace(call, phase="repair")])
            new = self._code(agent, fixed, resp.text, body_frame)
        else:
            user = Template(prompt("repair")).safe_substitute(
                problem=state.problem.statement,
                format_hint=format_hint(state.problem),
                thoughts=render_thoughts(state.thoughts),
                code=code.rstrip(),
                failures=render_failures(failures) or "(none)",
                notes="\n\n".join(f"- {n.strip()[:3000]}" for n in notes) or "(none)",
            )
            (resp,) = self.gateway.batch([Call(agent, "repair", self._request(agent, user))])
            new = extract_code(resp.text) if _has_code(resp.text) else ""
            new = _with_starter(new, state.problem) if new.strip() else ""
        if not new.strip():
            self.gateway.meter.parse_failures += 1
            return code
        return new

    def evaluate_state(self, agent: str, state: State, code: str = "") -> float:
        """The model's own score in [0, 1] for a plan (and a program written from it): ToT's state
        evaluation, RAP's reward, LATS's LM value. One call; :data:`NEUTRAL_VALUE` when the answer has no
        usable score. A base model cannot follow the instruction: no call, the neutral value."""
        if self._is_completion(agent):
            return NEUTRAL_VALUE
        program = f"\nProgram written from it:\n```python\n{code.rstrip()}\n```\n" if code.strip() else ""
        user = Template(prompt("evaluate")).safe_substitute(
            problem=state.problem.statement,
            format_hint=format_hint(state.problem),
            thoughts=render_thoughts(state.thoughts),
            program=program,
            subject="plan and program" if program else "plan",
        )
        (resp,) = self.gateway.batch([Call(agent, "evaluate", self._request(agent, user, 128))])
        value = parse_value(resp.text)
        if value is None:
            self.gateway.meter.parse_failures += 1
            return NEUTRAL_VALUE
        return value

    def debug_blocks(
        self, agent: str, state: State, code: str, failure: Failure, trace: str
    ) -> list[BlockVerdict]:
        """LDB's debugging step: a verdict per traced block of the failing run (one call); [] when the
        answer is malformed. A base model cannot follow the instruction: no call, []."""
        if self._is_completion(agent):
            return []
        user = Template(prompt("debug")).safe_substitute(
            problem=state.problem.statement,
            code=code.rstrip(),
            failure=render_failures([failure]),
            trace=trace or "(not available)",
        )
        (resp,) = self.gateway.batch([Call(agent, "debug", self._request(agent, user, 512))])
        verdicts = parse_verdicts(resp.text)
        if verdicts is None:
            self.gateway.meter.parse_failures += 1
            return []
        return verdicts

    def distinguish(self, agent: str, problem: PublicProblem, programs: Sequence[str], count: int) -> str:
        """One call: inputs on which the tied ``programs`` may behave differently (the S* pick); the raw
        answer, parsed by :func:`parse_inputs`."""
        call = problem.kind == "call" or bool(problem.entry_point)
        fn = problem.entry_point or "f"
        values = dict(
            problem=problem.statement,
            format_hint=format_hint(problem),
            programs="\n\n".join(
                f"Program {i + 1}:\n```python\n{code.rstrip()[:4000]}\n```" for i, code in enumerate(programs)
            ),
            count=count,
            input_format=(
                f"Each input is one Python expression that calls `{fn}` with concrete arguments."
                if call
                else "Each input is the complete standard input of one run of the program."
            ),
            example=json.dumps([f"{fn}(0)", f"{fn}([1, 2], 3)"] if call else ["3\n1 2 3\n", "0\n"]),
        )
        user = Template(prompt("distinguish")).safe_substitute(values)
        (resp,) = self.gateway.batch([Call(agent, "distinguish", self._request(agent, user, 512))])
        return resp.text

    def generate_tests(self, agent: str, problem: PublicProblem, count: int) -> list[TestCase]:
        if self._is_completion(agent):
            return []  # a base model cannot follow the test-writing instruction
        fmt = (
            'Each test is one Python assert line calling the function, e.g. ["assert f(1) == 2"].'
            if problem.kind == "call"
            else 'Each test is {"input": "<stdin>", "output": "<expected stdout>"}.'
        )
        user = Template(prompt("testgen")).safe_substitute(
            problem=problem.statement, format_hint=format_hint(problem), count=count, test_format=fmt
        )
        (resp,) = self.gateway.batch([Call(agent, "testgen", self._request(agent, user))])
        return parse_tests(resp.text, problem, count)


def _function_body_frame(state: State) -> str | None:
    """For a call-based problem whose statement *is* the function header and docstring (HumanEval), a base
    model does best continuing the body itself: the plan goes in as comments and the answer is the
    statement plus the continuation. None when the statement is not such a header."""
    p = state.problem
    text = p.statement.rstrip()
    if p.kind != "call" or not p.entry_point or not defines(text + "\n    pass\n", p.entry_point):
        return None
    if not (text.endswith('"""') or text.endswith("'''")):
        return None
    comments = "".join(f"    # Step {i + 1}: {t}\n" for i, t in enumerate(state.thoughts))
    return text + "\n" + comments


def _numbered(thoughts: Sequence[str], next_step: bool = False) -> str:
    lines = [f"{i + 1}. {t}" for i, t in enumerate(thoughts)]
    if next_step:
        lines.append(f"{len(thoughts) + 1}.")
    return "\n".join(lines)


def _with_starter(code: str, problem: PublicProblem) -> str:
    """Call-based problems: an answer that is only the function body gets the starter code in front; one
    that forgot the starter's imports gets them."""
    if problem.kind != "call" or not problem.starter_code:
        return code
    if problem.entry_point and not defines(code, problem.entry_point):
        return problem.starter_code + code
    imports = [ln for ln in problem.starter_code.splitlines() if ln.startswith(("import ", "from "))]
    missing = [ln for ln in imports if ln not in code]
    return ("\n".join(missing) + "\n" + code) if missing else code
