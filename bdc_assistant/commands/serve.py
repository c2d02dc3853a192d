"""`bdc serve`: the customized local solver behind an OpenAI-compatible HTTP API (see docs/serve.md)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need an API key)"
    )
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 = any free port)")
    p.add_argument(
        "--workers", type=int, default=1, help="model instances, each answering one request at a time"
    )
    p.add_argument(
        "--queue", type=int, default=8, help="requests that may wait for an instance before 503 (default 8)"
    )
    p.add_argument(
        "--api-key",
        help="require this key (Authorization: Bearer KEY); default: the keyring entry 'serve' if any "
        "(`bdc keys set serve`), which also keeps the key out of the process list",
    )
    p.add_argument(
        "--bundle",
        help="solver bundle directory ('none' = plain base model, 'shipped' = the one shipped for this base)",
    )
    p.add_argument("--backend", choices=["auto", "llamacpp", "torch"], help="override [backend].name")
    p.add_argument("--model-name", default="bdc", help="the model id clients ask for (default 'bdc')")
    p.add_argument(
        "--mixture",
        choices=["exact", "argmax"],
        default="exact",
        help="exact: the full gated mixture (default); argmax: per layer only the expert with the largest gate "
        "mass, as one scale (what per-request adapter scales on llama-server can express; for measuring it)",
    )


def run(args: argparse.Namespace) -> int:
    import importlib.util

    from ..config import load_settings
    from ..errors import BackendUnavailable
    from ..serve.server import ServeOptions, serve

    # Fail before loading any model, with one sentence, if llama-cpp-python[server]'s web stack is missing.
    for module in ("uvicorn", "starlette", "sse_starlette"):
        if importlib.util.find_spec(module) is None:
            raise BackendUnavailable(
                f"`bdc serve` needs {module.replace('_', '-')} (from llama-cpp-python[server]), which is not "
                "installed; run `make install`."
            )

    options = ServeOptions(
        host=args.host,
        port=args.port,
        workers=args.workers,
        queue=args.queue,
        api_key=args.api_key,
        bundle=args.bundle,
        backend=None if args.backend == "auto" else args.backend,
        model_name=args.model_name,
        mixture=args.mixture,
    )
    serve(load_settings(), options)
    return 0
