"""The tests an answer is run on (the statement's examples + the user's own) and a verdict per test.

The panel reads the examples of a new problem, adds the user's tests, and runs a code block on all of
them in the sandbox, in workers; the verdicts are kept in the chat state and the history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from ..types import TestCase, Verdict
from .messages import TestsDone
from .workers import start_worker

if TYPE_CHECKING:
    from .chat import ChatState
    from .codeblocks import CodeBlock
    from .engine import LocalEngine


class TestsPanel(Vertical):
    DEFAULT_CSS = """
    TestsPanel { height: auto; padding: 0 1; }
    TestsPanel .title { text-style: bold; color: $accent; }
    TestsPanel DataTable { height: auto; max-height: 14; }
    """

    __test__ = False

    def __init__(self, chat: ChatState, engine: LocalEngine, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chat, self.engine = chat, engine

    def compose(self) -> ComposeResult:
        yield Static("tests  (ctrl+t run · ctrl+n add)", classes="title")
        table: DataTable[str | Text] = DataTable(id="tests-table", zebra_stripes=True, cursor_type="row")
        table.add_columns("#", "from", "input", "verdict")
        yield table

    def show(self, tests: list[TestCase], verdicts: list[Verdict] | None = None) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for i, test in enumerate(tests):
            verdict: str | Text = "·"
            if verdicts is not None and i < len(verdicts):
                v = verdicts[i]
                style = "bold green" if v.passed else "bold red"
                verdict = Text(f"{v.status} {v.seconds:.2f}s", style=style)
            shown = test.input.replace("\n", "⏎")
            table.add_row(
                str(i + 1), test.origin, Text(shown[:18] + ("…" if len(shown) > 18 else "")), verdict
            )

    def show_chat(self) -> None:
        self.show(self.chat.tests(), self.chat.last_verdicts)

    def load_examples(self, problem: str) -> None:
        """Parse a new problem's examples in a worker; they count once it is still the current problem."""

        def done(tests: list[TestCase]) -> None:
            if problem == self.chat.problem:
                self.chat.example_tests = tests
                self.show_chat()

        start_worker(
            self,
            lambda: self.app.call_from_thread(done, self.engine.extract_examples(problem)),
            group="examples",
            what="Reading the problem's examples",
            on_error=lambda msg: self.app.call_from_thread(self.notify, msg, severity="warning"),
        )

    def add_test(self) -> None:
        from .screens.dialogs import AddTestDialog

        def done(test: TestCase | None) -> None:
            if test is not None:
                self.chat.user_tests.append(test)
                self.chat.last_verdicts = None
                self.show_chat()

        self.app.push_screen(AddTestDialog(), done)

    def run(self, block: CodeBlock) -> None:
        tests, code = self.chat.tests(), block.source
        if not tests:
            self.notify("No tests: the problem has no examples; add one with Ctrl+N.", severity="warning")
            return
        self.notify(f"Running code block {block.number} on {len(tests)} tests…", timeout=2)
        start_worker(
            self,
            lambda: self.post_message(TestsDone(code, tests, self.engine.run_tests(code, tests))),
            group="tests",
            what="Running the tests",
            on_error=lambda msg: self.post_message(TestsDone(code, tests, None, msg)),
        )

    def on_tests_done(self, msg: TestsDone) -> None:
        if msg.error or msg.verdicts is None:
            self.notify(msg.error or "The tests did not run.", title="sandbox", severity="error")
            return
        self.chat.keep_verdicts(msg.code, msg.tests, msg.verdicts)
        self.show(msg.tests, msg.verdicts)
        passed = sum(v.passed for v in msg.verdicts)
        ok = passed == len(msg.verdicts)
        self.notify(
            f"{passed}/{len(msg.verdicts)} tests passed.",
            severity="information" if ok else "warning",
            timeout=4,
        )
