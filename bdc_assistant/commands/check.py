"""`bdc check`: run one program on tests in the sandbox.

Tests file: a JSON list. Each item is one of
* ``{"input": "...", "output": "..."}`` — stdin/stdout (compared whitespace- and float-tolerantly);
* ``{"call": "assert f(2) == 4"}`` (or ``{"kind": "call", "input": "..."}``) — Python test code run after
  the program; it passes if it runs to the end;
* ``{"fn_name": "f", "input": "[2]", "output": "4"}`` — call ``f(*input)`` (or ``Solution().f``) and
  compare the JSON of the result with ``output`` (APPS call-based style).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import DatasetError
from ..types import TestCase


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--code", required=True, type=Path, help="the Python program to run")
    p.add_argument(
        "--tests",
        required=True,
        type=Path,
        help='JSON list: [{"input","output"}] stdin/stdout, [{"call": CODE}], or '
        '[{"fn_name","input","output"}]',
    )
    p.add_argument(
        "--timeout", type=float, default=None, help="seconds per test (default: sandbox.timeout_s)"
    )
    p.add_argument("--checker", default=None, help="name of a registered output checker")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def parse_tests(data: Any, where: str) -> list[TestCase]:
    if not isinstance(data, list):
        raise DatasetError(f"{where} must hold a JSON list of tests.")
    tests = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise DatasetError(f"Test {i} in {where} is not a JSON object.")
        if "call" in item:
            tests.append(TestCase(input=str(item["call"]), kind="call", origin="user"))
        elif item.get("fn_name"):
            args = item.get("input", "[]")
            out = item.get("output", "null")
            tests.append(
                TestCase(
                    input=args if isinstance(args, str) else json.dumps(args),
                    output=out if isinstance(out, str) else json.dumps(out),
                    kind="call",
                    fn_name=str(item["fn_name"]),
                    origin="user",
                )
            )
        elif item.get("kind") == "call":
            tests.append(TestCase(input=str(item.get("input", "")), kind="call", origin="user"))
        elif "input" in item:
            tests.append(
                TestCase(input=str(item["input"]), output=str(item.get("output", "")), origin="user")
            )
        else:
            raise DatasetError(f"Test {i} in {where} has no 'input' or 'call' key.")
    return tests


def run(args: argparse.Namespace) -> int:
    from ..evaluation import cc_checkers  # noqa: F401 - registers the CodeContests checkers --checker may name
    from ..sandbox import sandbox_from_settings

    try:
        code = args.code.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"Cannot read the program {args.code}: {exc}.") from exc
    try:
        data = json.loads(args.tests.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"Cannot read the tests file {args.tests}: {exc}.") from exc
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"The tests file {args.tests} is not valid JSON ({exc.msg}, line {exc.lineno})."
        ) from exc
    tests = parse_tests(data, str(args.tests))
    if args.timeout is not None and not 0 < args.timeout <= 600:
        raise DatasetError("--timeout must be between 0 and 600 seconds.")
    with sandbox_from_settings() as sandbox:
        verdicts = sandbox.run_tests(code, tests, timeout_s=args.timeout, checker=args.checker)
    passed = sum(v.passed for v in verdicts)
    if args.json:
        print(
            json.dumps(
                {"passed": passed, "total": len(verdicts), "verdicts": [v.as_dict() for v in verdicts]}
            )
        )
    else:
        for i, v in enumerate(verdicts, 1):
            line = f"test {i}: {v.status} ({v.seconds * 1000:.0f} ms)"
            print(line + (f" — {v.detail}" if v.detail else ""))
        print(f"{passed}/{len(verdicts)} passed", file=sys.stdout)
    return 0 if passed == len(verdicts) else 1
