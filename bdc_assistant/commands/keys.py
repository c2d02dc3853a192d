"""`bdc keys set|list|rm PROVIDER`: API keys in the OS keyring (env vars override them)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="keys_cmd", metavar="ACTION", required=True)
    s = sub.add_parser("set", help="store a key (asked without echo, or read from stdin)")
    s.add_argument("provider", help="openai, anthropic, openrouter, … (a preset name)")
    sub.add_parser("list", help="providers with a key, and where it comes from (masked)")
    r = sub.add_parser("rm", help="delete a stored key")
    r.add_argument("provider")


def run(args: argparse.Namespace) -> int:
    from .. import keys

    if args.keys_cmd == "list":
        from ..deep.providers.presets import key_envs

        found = keys.list_keys(key_envs())
        if not keys.keyring_available():
            print("(no OS keyring on this machine: only environment variables are used)", file=sys.stderr)
        if not found:
            print("no keys found")
        for k in found:
            print(f"{k.provider:<12} {k.source:<22} {k.masked}")
        return 0
    if args.keys_cmd == "set":
        keys._backend()  # fail early, before asking for the secret
        if sys.stdin.isatty():
            import getpass

            value = getpass.getpass(f"{args.provider} API key: ")
        else:
            value = sys.stdin.readline()
        keys.set_key(args.provider, value)
        print(f"stored the {args.provider} key in the OS keyring")
        return 0
    removed = keys.delete_key(args.provider)
    print(f"removed the {args.provider} key" if removed else f"no stored key for {args.provider}")
    return 0
