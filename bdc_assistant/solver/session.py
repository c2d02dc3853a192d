"""The local solver: route (customize) → generate a thought → generate a solution → typed events.

``open_solver`` picks the backend, loads the base model and, when a bundle is configured, the DisenLoRA
customizer. ``Solver.solve`` yields :mod:`bdc_assistant.types` events — the CLI and the TUI consume those
and nothing else. Each query's gates g (the whole customization) are appended to
``state_dir/logs/gates.jsonl``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Generator as EventStream
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends.base import CancelToken, GenerationParams, Generator
from ..config import Settings
from ..errors import BundleError
from ..paths import app_paths, ensure
from ..pysource import asserted_function, defines, named_function
from ..types import Answer, Checked, CodeToken, Gates, SolverEvent, StageDone, Started, ThoughtToken
from . import prompts
from .prompts import PromptStyle

if TYPE_CHECKING:
    from .customize import Customizer
    from .repair import ExampleRunner


@dataclass
class Solver:
    settings: Settings
    generator: Generator
    style: PromptStyle
    customizer: Customizer | None = None
    bundle_name: str | None = None
    bundle_note: str = ""
    examples: ExampleRunner | None = None  # runs the code on the problem's stated examples (repair rounds)
    _log_path: Path | None = field(default=None, repr=False)

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.generator.name,
            "model": self.generator.model_id,
            "bundle": self.bundle_name,
            "bundle_note": self.bundle_note,
            "prompt_style": self.style,
        }

    # -- the two stages -------------------------------------------------------------------------------

    def solve(
        self,
        problem: str,
        cancel: CancelToken | None = None,
        max_tokens: int | None = None,
        thought_tokens: int | None = None,
    ) -> Iterator[SolverEvent]:
        cancel = cancel or CancelToken()
        t0 = time.perf_counter()
        gates = self._customize(problem)
        setup_ms = (time.perf_counter() - t0) * 1000
        yield Started(self.generator.name, self.generator.model_id, self.bundle_name, gates, setup_ms)

        s = self.settings.solver
        base = GenerationParams(temperature=s.temperature, top_p=s.top_p, seed=self.settings.backend.seed)
        gen_t0 = time.perf_counter()
        tokens = 0

        planned = self.plan_mode() == "on"
        # stage 1: problem → thought (skipped when the plan is off: one turn straight to the code)
        thought = ""
        t1 = time.perf_counter()
        if planned:
            p2t = prompts.thought_prompt(problem, self.style)
            thought_parts = [p2t.prefix] if p2t.prefix else []
            if p2t.prefix:
                yield ThoughtToken(p2t.prefix)
            params = _with(base, max_tokens=thought_tokens or s.thought_tokens, stop=p2t.stops)
            for piece in self._stream(p2t.text, params, cancel):
                thought_parts.append(piece)
                tokens += 1
                yield ThoughtToken(piece)
            thought = _clean_thought("".join(thought_parts))
        stage1_tokens = tokens
        yield StageDone("thought", thought, stage1_tokens, time.perf_counter() - t1)

        # stage 2: thought → solution
        solution_parts: list[str] = []
        if not cancel.cancelled:
            t2s = (
                prompts.solution_prompt(problem, thought, self.style)
                if planned or self.style != "chat"
                else prompts.direct_prompt(problem)
            )
            t2 = time.perf_counter()
            params = _with(base, max_tokens=max_tokens or s.max_tokens, stop=t2s.stops)
            if t2s.prefix:
                yield CodeToken(t2s.prefix)  # the stub being completed, so the streamed code is whole
            for piece in self._stream(t2s.text, params, cancel):
                solution_parts.append(piece)
                tokens += 1
                yield CodeToken(piece)
            solution_text = "".join(solution_parts)
            yield StageDone("solution", solution_text, tokens - stage1_tokens, time.perf_counter() - t2)
        solution_text = "".join(solution_parts)
        code = self._code_from(problem, solution_text)
        checked: dict[str, Any] = {}
        if self._may_repair(cancel):
            repaired = yield from self._check_and_repair(
                problem, code, solution_text, base, max_tokens, cancel
            )
            code, solution_text, checked, extra_tokens = repaired
            tokens += extra_tokens
        seconds = time.perf_counter() - gen_t0
        answer = Answer(
            problem=problem,
            thought=thought,
            solution_text=solution_text,
            code=code,
            backend=self.generator.name,
            model=self.generator.model_id,
            bundle=self.bundle_name,
            tokens=tokens,
            seconds=seconds,
            tokens_per_s=tokens / seconds if seconds > 0 else 0.0,
            cancelled=cancel.cancelled,
            gates=gates,
            extra={"setup_ms": setup_ms, "bundle_note": self.bundle_note, **checked},
        )
        self._log(problem, gates, answer)
        yield answer

    # -- examples: check, and repair what fails --------------------------------------------------------

    def _may_repair(self, cancel: CancelToken) -> bool:
        # Chat models only: a base model in the completion frame cannot take "this failed, fix it".
        return (
            self.examples is not None
            and self.settings.solver.repair_rounds > 0
            and self.style == "chat"
            and not cancel.cancelled
        )

    def _check_and_repair(
        self,
        problem: str,
        code: str,
        solution_text: str,
        base: GenerationParams,
        max_tokens: int | None,
        cancel: CancelToken,
    ) -> EventStream[SolverEvent, None, tuple[str, str, dict[str, Any], int]]:
        """Yields Checked / CodeToken / StageDone; returns (code, solution_text, record, tokens spent)."""
        from ..errors import BdcError
        from . import repair

        assert self.examples is not None
        examples = repair.examples_for(problem)
        if not examples or not code.strip():
            return code, solution_text, {}, 0
        rounds = self.settings.solver.repair_rounds
        first = code
        best: tuple[int, str, str] | None = None
        spent = 0
        history: list[int] = []
        for rnd in range(rounds + 1):
            try:
                result = repair.check(self.examples, problem, code, examples)
            except BdcError as exc:  # no sandbox on this machine: the answer stands unchecked
                record: dict[str, Any] = {"examples": {"error": str(exc)}}
                return (best[1], best[2], record, spent) if best else (code, solution_text, record, spent)
            history.append(result.passed)
            if best is None or result.passed > best[0]:
                best = (result.passed, code, solution_text)
            again = bool(result.failure) and rnd < rounds and not cancel.cancelled
            yield Checked(rnd, result.passed, result.total, result.failure, again)
            if not again:
                break
            t0 = time.perf_counter()
            params = _with(
                base,
                max_tokens=max_tokens or self.settings.solver.max_tokens,
                stop=(),
                temperature=self.settings.solver.repair_temperature,
                seed=base.seed + rnd + 1,
            )
            parts: list[str] = []
            for piece in self._stream(prompts.retry_prompt(problem, result.failure).text, params, cancel):
                parts.append(piece)
                yield CodeToken(piece)
            spent += len(parts)
            solution_text = "".join(parts)
            yield StageDone("repair", solution_text, len(parts), time.perf_counter() - t0)
            code = self._code_from(problem, solution_text)
            if cancel.cancelled:
                break
        assert best is not None
        if best[1] != code:  # the last version shown did worse than an earlier one: say which stands
            yield Checked(len(history) - 1, best[0], len(examples), kept=best[1])
        summary: dict[str, Any] = {"total": len(examples), "passed": best[0], "per_round": history}
        if best[1] != first:
            summary["first_code"] = first  # what the repair replaced, for the record (and for measuring it)
        return best[1], best[2], {"examples": summary}, spent

    def _code_from(self, problem: str, solution_text: str) -> str:
        if self.style == "completion":
            stub = prompts.code_stub(problem)
            # The prompt ended inside a ```python fence (after the stub, if any): the text is raw code.
            return prompts.extract_code("```python\n" + (stub or "") + solution_text + "\n```")
        stub = prompts.code_stub(problem)
        wanted = (
            _last_function(stub)
            if stub is not None
            else asserted_function(problem) or named_function(problem)
        )
        if wanted is None:
            return prompts.extract_code(solution_text)
        # A function was asked for: take the block that defines it, without the demo an instruct model adds
        # (a program that does not define it is kept whole: its calls may be the program).
        code = prompts.extract_code(solution_text, wanted)
        return prompts.strip_demo(code) if defines(code, wanted) else code

    def plan_mode(self) -> str:
        """'on' or 'off': the setting, or for 'auto' the mode that won on the validation split."""
        mode = self.settings.solver.plan
        if mode != "auto":
            return mode
        return AUTO_PLAN[self.style]

    def answer(
        self, problem: str, max_tokens: int | None = None, cancel: CancelToken | None = None
    ) -> Answer:
        events = list(self.solve(problem, cancel=cancel, max_tokens=max_tokens))
        answer = events[-1]
        assert isinstance(answer, Answer)
        return answer

    def forget_prompt_cache(self) -> None:
        """Drop the generator's cached prompt prefix (evaluation: answers independent of the last problem)."""
        forget = getattr(self.generator, "forget_prompt_cache", None)
        if callable(forget):
            forget()

    def close(self) -> None:
        try:
            if self.examples is not None:
                self.examples.close()
        finally:
            self.generator.close()

    # -- internals ------------------------------------------------------------------------------------

    def _stream(self, prompt: str, params: GenerationParams, cancel: CancelToken) -> Iterator[str]:
        if self.style == "chat":
            chat = getattr(self.generator, "chat", None)
            if chat is not None:
                return iter(chat([{"role": "user", "content": prompt}], params, cancel))
        return iter(self.generator.generate(prompt, params, cancel))

    def _customize(self, problem: str) -> Gates | None:
        if self.customizer is None:
            self.generator.set_customization(None)
            return None
        custom = self.customizer.for_query(problem)
        self.generator.set_customization(custom)
        return custom.gates

    def _log(self, problem: str, gates: Gates | None, answer: Answer) -> None:
        if gates is None:
            return
        try:
            path = self._log_path or ensure(app_paths().logs_dir) / "gates.jsonl"
            record = {
                "time": time.time(),
                "problem_sha256": hashlib.sha256(problem.encode()).hexdigest(),
                "bundle": self.bundle_name,
                "experts": [round(x, 6) for x in gates.expert_means()],
                "g": [[round(v, 6) for v in row] for row in gates.values],
                "tokens": answer.tokens,
            }
            with path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
        except OSError:
            pass  # logging must never break an answer


# What `solver.plan = "auto"` means per prompt style, chosen on the validation split (mbpp-val + codecontests-val,
# see README "Choosing the solver mode"); base models in the completion frame keep the two-stage answer.
AUTO_PLAN: dict[str, str] = {"completion": "on", "chat": "off"}


def _last_function(stub: str) -> str | None:
    import ast

    try:
        funcs = [n for n in ast.parse(stub).body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    except SyntaxError:
        return None
    return funcs[-1].name if funcs else None


def _with(params: GenerationParams, **changes: Any) -> GenerationParams:
    from dataclasses import replace

    return replace(params, **changes)


def _clean_thought(text: str) -> str:
    lines = [re.sub(r"^(\s*\d+\.)\s*", r"\1 ", ln.rstrip()) for ln in text.strip().splitlines()]
    return "\n".join(ln for ln in lines if ln.strip()).strip()


SHIPPED_ASKED = "the shipped bundle, asked for by name"
PLAIN_WORDS = ("none", "off", "base")  # --bundle values that mean "the plain base model"
BUNDLE_WORDS = (*PLAIN_WORDS, "shipped")  # --bundle values that are not paths


def resolve_bundle_path(settings: Settings, bundle: str | Path | None) -> tuple[Path | None, str]:
    """Which bundle to use, and a note saying why (shown to the user when no bundle is active). ``shipped``
    names the shipped bundle for the running base (:func:`bundles.fit_to_base` picks it once the base is known)."""
    if not settings.bundle.enabled and bundle is None:
        return None, "bundle disabled in settings: answering with the plain base model"
    if bundle is not None and str(bundle) in PLAIN_WORDS:
        return None, "no bundle requested: answering with the plain base model"
    if bundle is not None and str(bundle) == "shipped":
        from .. import bundles

        shipped = bundles.shipped_bundle_dir()
        if shipped is None:
            raise BundleError("This build ships no solver bundle, so `--bundle shipped` has nothing to use.")
        return shipped, SHIPPED_ASKED
    if bundle is not None:
        return Path(bundle).expanduser(), "bundle given on the command line"
    if settings.bundle.path:
        return Path(settings.bundle.path).expanduser(), "bundle from settings"
    from .. import bundles

    active = bundles.active_bundle_path()
    if active is not None:
        return active, "active registered bundle"
    shipped = bundles.shipped_bundle_dir()
    if shipped is not None:
        return shipped, "shipped default bundle"
    return None, "no solver bundle installed: answering with the plain base model"


def open_solver(settings: Settings, backend: str | None = None, bundle: str | Path | None = None) -> Solver:
    """Load the base model on the chosen backend and, if a bundle applies, its customizer."""
    from .. import bundles
    from ..backends.select import open_generator
    from .customize import loaded_base_identity

    generator = open_generator(settings, backend)
    try:
        bundle_path, note = resolve_bundle_path(settings, bundle)
        # The shipped bundle is made for one base: on another base answer plainly (and say so).
        bundle_path, note = bundles.fit_to_base(
            bundle_path, note, loaded_base_identity(generator), asked=note == SHIPPED_ASKED
        )
        customizer = None
        bundle_name = None
        if bundle_path is not None:
            from .customize import open_customizer

            customizer = open_customizer(settings, bundle_path, generator)
            bundle_name = customizer.name
    except BaseException:
        generator.close()  # a refused bundle must not leak the loaded model
        raise
    from .repair import SandboxRunner

    style = prompt_style(settings, generator)
    examples = SandboxRunner(settings) if style == "chat" and settings.solver.repair_rounds > 0 else None
    return Solver(settings, generator, style, customizer, bundle_name, note, examples)


def prompt_style(settings: Settings, generator: Generator) -> PromptStyle:
    """The configured prompt style, or for 'auto': chat for instruct models, completion for base models."""
    from ..models.resolve import embedded_solver

    style = settings.models.chat_template
    if style != "auto":
        return style  # type: ignore[return-value]
    spec = embedded_solver(settings)
    if spec is not None:
        return "chat" if spec.chat else "completion"
    return "chat" if getattr(generator, "has_chat_template", False) else "completion"
