"""Commands besides the keys: the command palette's provider (Ctrl+P) and the ``/slash`` commands typed
into the editor. Both only call the app's actions.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from .app import BdcApp

Command = tuple[str, str, Callable[[], Any]]  # title, help, callback


def palette_commands(app: BdcApp) -> list[Command]:
    """Every palette entry, the numbered code blocks' included, in the order the palette lists them."""
    out: list[Command] = [
        ("Copy last code block", "Copy the newest code block (Ctrl+Y)", app.action_copy_block),
    ]
    for block in app.chat.blocks:
        n = block.number
        out += [
            (f"Copy code block {n}", "Copy this block's raw source", partial(app.action_copy_block, n)),
            (
                f"Run tests on code block {n}",
                "Run examples + your tests in the sandbox",
                partial(app.action_run_tests, n),
            ),
        ]
    return [
        *out,
        ("Save code block", "Save the newest code block to a file (Ctrl+S)", app.action_save_block),
        ("Run tests", "Run the newest code block on the tests (Ctrl+T)", app.action_run_tests),
        ("Add test", "Add your own input / expected output (Ctrl+N)", app.action_add_test),
        ("Cancel", "Stop the answer being generated (Esc)", app.action_cancel),
        ("Deep mode", "Search with several LLMs (opt-in, budgeted) (Ctrl+D)", app.action_deep),
        ("History", "Search, reopen and export past conversations (Ctrl+R)", app.action_history),
        ("New conversation", "Start over (Ctrl+L)", app.action_new_conversation),
        ("Retrain", "Train new experts from stored trajectories (F4)", app.action_retrain),
        ("Settings", "Backend, model paths, bundle, threads, theme (Ctrl+O)", app.action_settings),
        ("Toggle dark / light theme", "Switch between the two themes", app.action_toggle_theme),
        ("Key help", "Every key binding (F1)", app.action_keys),
    ]


class BdcCommands(Provider):
    """The app's own palette entries (Textual's system commands come from their own provider)."""

    async def discover(self) -> Hits:
        for title, help_text, callback in palette_commands(cast("BdcApp", self.app)):
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in palette_commands(cast("BdcApp", self.app)):
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)


def slash(app: BdcApp, line: str) -> None:
    """``/copy N``, ``/save N PATH``, ``/test [N]``, ``/deep``, ``/history``, ``/new``, ``/retrain``,
    ``/settings``, ``/keys``."""
    parts = line[1:].split()
    cmd, args = (parts[0].lower(), parts[1:]) if parts else ("", [])
    num = int(args[0]) if args and args[0].isdigit() else None
    if cmd == "copy":
        app.action_copy_block(num)
    elif cmd == "save" and len(args) >= 2 and num is not None:
        block = app.block(num)
        if block:
            app.save_block(block, Path(args[1]).expanduser())
    elif cmd == "save":
        app.action_save_block(num)
    elif cmd in ("test", "tests", "run"):
        app.action_run_tests(num)
    elif cmd in SCREENS:
        SCREENS[cmd](app)
    elif cmd == "new":
        app.call_later(app.action_new_conversation)
    else:
        app.notify(
            f"Unknown command '/{cmd}'; try /copy N, /save N PATH, /test N, /deep, /history, /new.",
            severity="warning",
        )


SCREENS: dict[str, Callable[[BdcApp], None]] = {
    "deep": lambda app: app.action_deep(),
    "history": lambda app: app.action_history(),
    "retrain": lambda app: app.action_retrain(),
    "settings": lambda app: app.action_settings(),
    "keys": lambda app: app.action_keys(),
}
