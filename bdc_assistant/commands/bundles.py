"""`bdc bundles list|show|use|rollback|register`: the solver bundles this install knows and which is active."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    ls = sub.add_parser("list", help="list the shipped and registered bundles (default)")
    show = sub.add_parser("show", help="print one bundle's summary (default: the active one)")
    show.add_argument("id", nargs="?", default=None)
    use = sub.add_parser("use", help="make a bundle active (the previous one can be rolled back to)")
    use.add_argument("id")
    rb = sub.add_parser("rollback", help="return to the previously active bundle")
    reg = sub.add_parser("register", help="copy a bundle directory into the registry")
    reg.add_argument("path")
    reg.add_argument("--activate", action="store_true", help="also make it active")
    p.add_argument("--json", action="store_true", help="print JSON")
    for sp in (ls, show, use, rb, reg):  # `bdc bundles list --json` and `bdc bundles --json list` both work
        sp.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")


def _line(s: dict[str, Any]) -> str:
    mark = "*" if s["active"] else " "
    metrics = s.get("metrics") or {}
    score = ""
    if isinstance(metrics, dict) and "ac" in metrics:
        score = f"  AC {metrics['ac']:.2f} PR {metrics['pr']:.2f}"
    base = (s.get("base") or {}).get("name", "?")
    return f"{mark} {s['id']:<40} K={s['experts']:<2} base={base:<28} {s.get('created_at') or '':<26}{score}"


def run(args: argparse.Namespace) -> int:
    from .. import bundles

    action = args.action or "list"
    as_json = bool(args.json)
    if action == "list":
        entries = [e.summary() for e in bundles.list_bundles()]
        if as_json:
            print(json.dumps(entries, default=str))
        elif not entries:
            print("no solver bundles: answers use the plain base model (train one with `bdc retrain`).")
        else:
            for s in entries:
                print(_line(s))
        return 0
    if action == "show":
        if args.id is None:
            info = bundles.active_bundle_info()
        else:
            matches = [e.summary() for e in bundles.list_bundles() if e.id == args.id]
            info = matches[0] if matches else None
        if info is None:
            from ..errors import BundleError

            raise BundleError(f"No bundle '{args.id}' is known." if args.id else "No bundle is active.")
        print(json.dumps(info, indent=None if as_json else 2, default=str))
        return 0
    if action == "use":
        entry = bundles.use(args.id)
    elif action == "rollback":
        entry = bundles.rollback()
    else:  # register
        from pathlib import Path

        entry = bundles.register(Path(args.path), activate=args.activate)
    if as_json:
        print(json.dumps(entry.summary(), default=str))
    else:
        verb = {"use": "active bundle", "rollback": "rolled back to", "register": "registered"}[action]
        print(f"{verb}: {entry.id} ({entry.path})")
    return 0
