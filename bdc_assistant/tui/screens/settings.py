"""Settings: backend, model paths, bundle, threads, theme, Enter behaviour. Saved to config.toml."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Select, Static, Switch

from ...errors import BdcError

if TYPE_CHECKING:
    from ...config import Settings


class SettingsScreen(Screen[None]):
    DEFAULT_CSS = """
    SettingsScreen Grid { grid-size: 2; grid-columns: 26 1fr; grid-rows: auto; height: auto; padding: 0 2; }
    SettingsScreen Label { padding: 1 0 0 0; }
    SettingsScreen .note { color: $text-muted; padding: 0 2; }
    SettingsScreen #set-buttons { height: auto; padding: 1 2; }
    SettingsScreen #set-buttons Button { margin-right: 2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Back"),
        Binding("ctrl+s", "save", "Save"),
    ]

    def __init__(self, settings: Settings, config_file: Path, on_saved: Callable[[], None]) -> None:
        """Saves to ``config_file``, updates ``settings`` in place, then calls ``on_saved``."""
        super().__init__()
        self.settings, self.config_file, self.on_saved = settings, config_file, on_saved

    def compose(self) -> ComposeResult:
        s = self.settings
        with VerticalScroll():
            yield Static(
                "settings · saved to config.toml; backend and model changes apply on the next start",
                classes="note",
            )
            with Grid():
                yield Label("backend")
                yield Select(
                    [
                        ("auto (CUDA → torch, else llama.cpp)", "auto"),
                        ("llama.cpp (CPU)", "llamacpp"),
                        ("torch", "torch"),
                    ],
                    value=s.backend.name,
                    allow_blank=False,
                    id="backend",
                )
                yield Label("threads (0 = all cores)")
                yield Input(str(s.backend.threads), id="threads", type="integer")
                yield Label("base model GGUF")
                yield Input(s.models.base_gguf, placeholder="embedded gemma-3-270m Q4_K_M", id="base_gguf")
                yield Label("base model HF dir")
                yield Input(s.models.base_hf_dir, placeholder="dequantized from the GGUF", id="base_hf_dir")
                yield Label("small model GGUF")
                yield Input(
                    s.models.small_gguf, placeholder="embedded SmolLM2-135M-Instruct", id="small_gguf"
                )
                yield Label("solver bundle")
                yield Input(s.bundle.path, placeholder="active registered bundle", id="bundle_path")
                yield Label("use the bundle")
                yield Switch(s.bundle.enabled, id="bundle_enabled")
                yield Label("theme")
                yield Select(
                    [("dark", "dark"), ("light", "light")], value=s.tui.theme, allow_blank=False, id="theme"
                )
                yield Label("Enter sends")
                yield Switch(s.tui.enter_sends, id="enter_sends")
            with Horizontal(id="set-buttons"):
                yield Button("Save", id="save", variant="primary")
                yield Button("Back", id="back")
        yield Footer()

    def changes(self) -> dict[str, dict[str, Any]]:
        def text(i: str) -> str:
            return self.query_one(f"#{i}", Input).value.strip()

        threads = text("threads") or "0"
        if not threads.isdigit():
            raise BdcError("Threads must be a whole number (0 = all cores).")
        return {
            "backend": {"name": self.query_one("#backend", Select).value, "threads": int(threads)},
            "models": {
                "base_gguf": text("base_gguf"),
                "base_hf_dir": text("base_hf_dir"),
                "small_gguf": text("small_gguf"),
            },
            "bundle": {
                "path": text("bundle_path"),
                "enabled": self.query_one("#bundle_enabled", Switch).value,
            },
            "tui": {
                "theme": self.query_one("#theme", Select).value,
                "enter_sends": self.query_one("#enter_sends", Switch).value,
            },
        }

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        from ..settings_io import save_settings

        path = self.config_file
        try:
            changes = self.changes()
            save_settings(path, changes)
        except BdcError as exc:
            self.notify(str(exc), severity="error")
            return
        for section, values in changes.items():
            sec = getattr(self.settings, section)  # the section named by the key
            for key, value in values.items():
                setattr(sec, key, value)
        self.on_saved()
        self.notify(f"Saved to {path}.", timeout=4)

    @on(Button.Pressed, "#back")
    async def action_cancel(self) -> None:
        self.app.pop_screen()
