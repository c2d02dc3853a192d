"""A block-level execution trace of one failing test, in the spirit of LDB ("Debug like a Human").

The candidate program is wrapped in a small tracer (``sys.settrace``, stdlib only) and run *in the
sandbox* like any other program. Consecutive executed lines form a basic block; a jump or a call/return
ends it, and the block's local variables are snapshotted there. Only the first 5 and last 5 blocks are
kept (LDB's budget), each with its source lines and up to 12 variables (reprs cut to 80 chars). The
tracer prints one JSON record to stderr after a marker; :func:`render` turns it into prompt text.

Object addresses (``<list_iterator object at 0x7f…>``) are masked before a repr is cut: they change from
one run to the next, and a prompt that carries one is a new prompt each time, so a resumed benchmark
could not replay it from the response cache (:func:`without_addresses`).
"""

from __future__ import annotations

import json
import re

from ..types import TestCase

MARKER = "@@BDC_TRACE@@"

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_MASK = " at 0x..."


def without_addresses(text: str) -> str:
    """``text`` with every `` at 0x7f…`` of a default repr masked, so that a program's output, its error
    or its trace reads the same on every run (and the prompt quoting it hits the response cache)."""
    return _ADDRESS.sub(_MASK, text)


_PRELUDE = r"""
import sys as _s, json as _j, re as _re
_ADDR, _MASK = _re.compile(__ADDRESS__), __MASK__
_SRC = __SRC__
_FN = "<solution>"
_head, _tail, _n = [], [], [0]
_cur = {"start": None, "end": None, "fn": None, "frame": None}

def _snap(frame):
    out = {}
    for k, v in list(frame.f_locals.items()):
        if k.startswith("__") or callable(v) or type(v).__name__ == "module":
            continue
        try:
            r = _ADDR.sub(_MASK, repr(v))
        except Exception:
            r = "<unrepr>"
        out[k] = r[:80]
        if len(out) >= 12:
            break
    return out

def _close():
    if _cur["start"] is None:
        return
    blk = {"fn": _cur["fn"], "start": _cur["start"], "end": _cur["end"], "vars": _snap(_cur["frame"])}
    _n[0] += 1
    if len(_head) < 5:
        _head.append(blk)
    else:
        _tail.append(blk)
        if len(_tail) > 5:
            _tail.pop(0)
    _cur["start"] = None

def _tr(frame, event, arg):
    if frame.f_code.co_filename != _FN:
        return None
    if event == "line":
        ln = frame.f_lineno
        if _cur["start"] is not None and (frame.f_code.co_name != _cur["fn"] or ln != _cur["end"] + 1):
            _close()
        if _cur["start"] is None:
            _cur.update(start=ln, end=ln, fn=frame.f_code.co_name, frame=frame)
        else:
            _cur["end"] = ln
    elif event in ("return", "exception") and _cur["frame"] is frame:
        _close()
    return _tr

def _dump(err):
    _s.settrace(None)
    _close()
    rec = {"blocks": _head + _tail, "total": _n[0], "error": err}
    _s.stderr.write("\n" + "__MARK__" + _j.dumps(rec) + "\n")
    _s.stderr.flush()

_err = ""
_s.settrace(_tr)
try:
    exec(compile(_SRC, _FN, "exec"), {"__name__": "__main__"})
except SystemExit:
    pass
except BaseException as _e:
    _err = type(_e).__name__ + ": " + _ADDR.sub(_MASK, str(_e))[:200]
finally:
    _dump(_err)
"""

# The marker and the address mask are filled in once, before the source: a program that happens to contain
# one of the placeholders must reach the sandbox unchanged.
_TRACER = (
    _PRELUDE.replace("__MARK__", MARKER)
    .replace("__ADDRESS__", repr(_ADDRESS.pattern))
    .replace("__MASK__", repr(_MASK))
)


def traced_program(code: str, test: TestCase) -> tuple[str, str]:
    """(program, stdin): the code (plus the test's asserts for call tests) under the tracer."""
    source = code if test.kind == "stdio" else code.rstrip("\n") + "\n\n" + test.input + "\n"
    program = _TRACER.replace("__SRC__", repr(source))
    return program, test.input if test.kind == "stdio" else ""


def parse(stderr: str) -> dict | None:
    i = stderr.rfind(MARKER)
    if i == -1:
        return None
    try:
        return json.loads(stderr[i + len(MARKER) :].splitlines()[0])
    except (json.JSONDecodeError, IndexError):
        return None


def render(record: dict | None, source: str) -> str:
    if not record:
        return ""
    lines = source.splitlines()
    out = [f"{record.get('total', 0)} blocks executed; showing the first and last (at most 5 each)."]
    for i, b in enumerate(record.get("blocks", [])):
        code = "\n".join(
            f"    {lines[n - 1]}" for n in range(b["start"], b["end"] + 1) if 0 < n <= len(lines)
        )
        vars_ = ", ".join(f"{k}={v}" for k, v in b.get("vars", {}).items())
        out.append(f"[block {i}] {b['fn']} lines {b['start']}-{b['end']}\n{code}\n  state: {vars_ or '-'}")
    if record.get("error"):
        out.append(f"raised {record['error']}")
    return "\n".join(out)
