"""`bdc paths`: where config, data, cache, state and models live."""

from __future__ import annotations

import argparse
import json

from ..paths import app_paths


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    paths = app_paths().as_dict()
    if args.json:
        print(json.dumps(paths))
    else:
        width = max(map(len, paths))
        for key, value in paths.items():
            print(f"{key:<{width}}  {value}")
    return 0
