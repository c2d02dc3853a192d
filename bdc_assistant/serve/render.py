"""Solver events → the Markdown an editor shows, and a query's gates → the ``bdc`` field of a response.

Shared by ``bdc serve`` (OpenAI-compatible HTTP) and ``bdc acp`` (Agent Client Protocol), so both say the
same thing the same way as ``bdc ask``: a ``## Plan`` section (when the solver plans) and a
``## Solution`` with the code in one ```` ```python ```` fence. The renderer is lazy — a header appears with
the first token of its stage — because the solver may skip the plan (``solver.plan = "off"``) and a
chat-style model may open its own code fence, which must not be fenced twice. When the code fails an example
the problem states and the solver repairs it, a ``## Fix`` section says what failed and holds the new code
(the last code block is the answer).
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..types import Answer, Checked, CodeToken, Gates, SolverEvent, StageDone, Started, ThoughtToken

FENCE_OPEN = "```python\n"
FENCE_CLOSE = "\n```\n"


class MarkdownRenderer:
    """Feed solver events one by one; ``feed`` returns the Markdown text to append (often empty)."""

    def __init__(self) -> None:
        self.plan_shown = False
        self.code_started = False
        self._fenced = False  # we opened a fence that we must close
        self._pending = ""  # first code characters, held until we know whether the model opens a fence
        self._head = ""  # what goes before the next code block ("## Solution" after a plan, "## Fix")

    def feed(self, ev: SolverEvent) -> str:
        if isinstance(ev, ThoughtToken):
            if not ev.text:
                return ""
            head = "" if self.plan_shown else "## Plan\n"
            self.plan_shown = True
            return head + ev.text
        if isinstance(ev, CodeToken):
            return self._code(ev.text)
        if isinstance(ev, StageDone) and ev.stage in ("solution", "repair"):
            return self._close()
        if isinstance(ev, Checked) and ev.kept:
            out = self._close()
            kept = ev.kept.rstrip("\n")
            note = f"The retries did no better on the examples; the answer is the earlier version ({ev.passed}/{ev.total})"
            return f"{out}\n\n## Answer\n{note}:\n\n{FENCE_OPEN}{kept}{FENCE_CLOSE}"
        if isinstance(ev, Checked) and ev.repairing:
            out = self._close()
            self.code_started = False
            failure = "\n".join("> " + line for line in ev.failure.splitlines())
            self._head = (
                f"\n\n## Fix\nThe code failed an example ({ev.passed}/{ev.total} passed):\n{failure}\n\n"
            )
            return out
        return ""

    def _code(self, text: str) -> str:
        if self._fenced or (self.code_started and not self._pending):
            return text
        self._pending += text
        body = self._pending.lstrip()
        # Three non-blank characters tell whether the model writes its own ``` fence (chat models do).
        if len(body) < 3:
            return ""
        return self._start_code()

    def _start_code(self) -> str:
        head = self._head or ("\n\n## Solution\n" if self.plan_shown else "")
        self._head = ""
        text, self._pending = self._pending, ""
        self.code_started = True
        if text.lstrip().startswith("```"):
            return head + text.lstrip()
        self._fenced = True
        return head + FENCE_OPEN + text

    def _close(self) -> str:
        out = ""
        if self._pending:
            out = self._start_code()
        if self._fenced:
            self._fenced = False
            return out + FENCE_CLOSE
        return out

    def finish(self) -> str:
        """Whatever is still open when generation ends early (cancel, token cap)."""
        return self._close()


def _round(values: list[float], nd: int = 4) -> list[float]:
    return [round(float(v), nd) for v in values]


def layer_expert_means(gates: Gates) -> list[list[float]]:
    """Mean gate of each expert in each layer: the expert mixture, layer by layer ([L][K])."""
    r = max(gates.rank, 1)
    return [[sum(row[k * r : (k + 1) * r]) / r for k in range(gates.n_experts)] for row in gates.values]


def gates_digest(gates: Gates) -> str:
    """A short fingerprint of the whole g (rounded to 1e-6), so two answers' customizations can be compared."""
    text = ";".join(",".join(f"{v:.6f}" for v in row) for row in gates.values)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def gates_summary(gates: Gates) -> dict[str, Any]:
    flat = [v for row in gates.values for v in row]
    return {
        "layers": len(gates.values),
        "experts": gates.n_experts,
        "rank": gates.rank,
        "mean": round(sum(flat) / max(len(flat), 1), 4),
        "min": round(min(flat), 4) if flat else 0.0,
        "max": round(max(flat), 4) if flat else 0.0,
        "per_layer": [_round(row) for row in layer_expert_means(gates)],
        "cluster_similarity": _round(list(gates.cluster_similarity)),
        "sha256_16": gates_digest(gates),
    }


def expert_mixture(gates: Gates) -> list[dict[str, Any]]:
    """Each expert's mean gate and its share of the total gate mass (what the app's mixture bar shows)."""
    means = gates.expert_means()
    total = sum(means) or 1.0
    names = list(gates.cluster_names) or [f"expert-{k}" for k in range(gates.n_experts)]
    return [
        {
            "index": k,
            "cluster": names[k] if k < len(names) else f"expert-{k}",
            "gate": round(m, 4),
            "share": round(m / total, 4),
        }
        for k, m in enumerate(means)
    ]


def bdc_field(started: Started | None, *, bundle_note: str, answer: Answer | None = None) -> dict[str, Any]:
    """The extra ``bdc`` object of a response: how this request was customized (or that it was not)."""
    out: dict[str, Any] = {}
    if started is not None:
        out.update(backend=started.backend, base_model=started.model, bundle=started.bundle)
        out["setup_ms"] = round(started.setup_ms, 2)
        if started.gates is not None:
            out["customized"] = True
            out["gates_summary"] = gates_summary(started.gates)
            out["experts"] = expert_mixture(started.gates)
        else:
            out["customized"] = False
            out["gates_summary"] = None
            out["experts"] = None
            out["note"] = bundle_note or "no solver bundle for this base: answering with the plain base model"
    if answer is not None:
        out["tokens"] = answer.tokens
        out["seconds"] = round(answer.seconds, 3)
        out["tokens_per_s"] = round(answer.tokens_per_s, 2)
        out["cancelled"] = answer.cancelled
    return out
