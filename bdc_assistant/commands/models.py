"""`bdc models install|verify|path`: the embedded offline models."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["install", "verify", "list"], nargs="?", default="list")
    p.add_argument("--force", action="store_true", help="re-assemble even if present")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from ..models import embedded

    if args.action == "install":
        path = embedded.install_base(force=args.force)
        if not args.json:
            print(f"base model ready: {path}")
    rows = [
        {"role": f.role, "path": str(f.path), "status": f.status(verify=args.action != "list")}
        for f in embedded.embedded_files()
    ]
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            print(f"{row['role']:<11} {row['status']:<13} {row['path']}")
    bad = [r for r in rows if r["status"] in ("missing", "sha_mismatch")]
    return 1 if bad and args.action == "verify" else 0
