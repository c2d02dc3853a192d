"""`bdc config`: print the resolved settings (file + env) as TOML."""

from __future__ import annotations

import argparse

from ..config import load_settings, settings_as_toml
from ..paths import app_paths


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--path", action="store_true", help="print only the config file's path")


def run(args: argparse.Namespace) -> int:
    if args.path:
        print(app_paths().config_file)
        return 0
    print(settings_as_toml(load_settings()), end="")
    return 0
