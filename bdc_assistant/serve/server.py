"""Load the model instances and run the OpenAI-compatible app on uvicorn.

Loopback by default. Binding any other address exposes the model (and the machine's CPU) to the network,
so it needs an API key — ``--api-key`` or the keyring entry ``serve`` (``bdc keys set serve``; the
environment variable ``BDC_KEY_SERVE`` overrides it) — and the startup line says the server is reachable
from other machines. A key that is configured is enforced on loopback too.

The listening socket is bound here, before uvicorn starts, so ``--port 0`` works and the startup line
names the real port (tests and scripts read it from stderr).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import BundleError, ConfigError

if TYPE_CHECKING:
    from ..config import Settings
    from .app import ServeState

KEY_NAME = "serve"  # keyring entry / BDC_KEY_SERVE


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    queue: int = 8
    api_key: str | None = None
    bundle: str | None = None
    backend: str | None = None
    model_name: str = "bdc"
    mixture: str = "exact"  # "argmax": the per-layer arg-max approximation (serve/approx.py)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_api_key(host: str, explicit: str | None) -> tuple[str | None, str]:
    """(key, where it came from); refuses a non-loopback bind without one."""
    if explicit is not None:
        if not explicit.strip():
            raise ConfigError("--api-key is empty; give a key, or leave the option out on loopback.")
        return explicit.strip(), "--api-key"
    from .. import keys

    found = keys.get_key(KEY_NAME)
    if found is not None:
        return found
    if not is_loopback(host):
        raise ConfigError(
            f"Binding to {host} makes the model reachable from other machines, so it needs an API key: "
            f"pass --api-key KEY or store one with `bdc keys set {KEY_NAME}` (or set BDC_KEY_SERVE)."
        )
    return None, ""


def _with_threads(settings: Settings, workers: int) -> Settings:
    """Split the cores between instances when the user left ``backend.threads`` at 0 (all cores)."""
    if workers <= 1 or settings.backend.threads > 0:
        return settings
    from ..backends.llamacpp_backend import resolve_threads

    per = max(1, resolve_threads(0) // workers)
    return settings.model_copy(update={"backend": settings.backend.model_copy(update={"threads": per})})


def open_instance(settings: Settings, backend: str | None, bundle: str | None) -> Any:
    """One solver. Without ``--bundle``, a bundle that does not fit this base falls back to the plain base."""
    from ..solver.session import open_solver

    try:
        return open_solver(settings, backend=backend, bundle=bundle)
    except BundleError as exc:
        if bundle is not None:
            raise
        solver = open_solver(settings, backend=backend, bundle="none")
        solver.bundle_note = (
            f"no usable solver bundle for this base ({exc}): answering with the plain base model"
        )
        return solver


def load_instances(settings: Settings, options: ServeOptions, log: TextIO) -> list[Any]:
    settings = _with_threads(settings, options.workers)
    solvers: list[Any] = []
    try:
        for i in range(options.workers):
            print(f"bdc serve: loading model instance {i + 1}/{options.workers}…", file=log, flush=True)
            solvers.append(open_instance(settings, options.backend, options.bundle))
        from .approx import apply_mixture

        apply_mixture(solvers, options.mixture)
        warm_up(solvers[0])
    except BaseException:
        for s in solvers:
            with contextlib.suppress(Exception):
                s.close()
        raise
    return solvers


def warm_up(solver: Any) -> None:
    """Load the encoder now (it is shared by all instances), not on the first request: ~10 s on a busy CPU."""
    customizer = getattr(solver, "customizer", None)
    if customizer is not None:
        customizer.for_query("warm up")


def instance_info(solver: Any) -> dict[str, Any]:
    from .approx import ArgmaxCustomizer

    info = dict(solver.info())
    mixture = "argmax" if isinstance(getattr(solver, "customizer", None), ArgmaxCustomizer) else "exact"
    return {
        "mixture": mixture if info.get("bundle") else None,
        "backend": info.get("backend"),
        "base_model": info.get("model"),
        "bundle": info.get("bundle"),
        "customized": info.get("bundle") is not None,
        "bundle_note": "" if info.get("bundle") else info.get("bundle_note", ""),
        "prompt_style": info.get("prompt_style"),
    }


def bind_socket(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        raise ConfigError(f"Cannot listen on {host}:{port} ({exc.strerror or exc}).") from exc
    sock.set_inheritable(True)
    return sock


def run_server(state: ServeState, sock: socket.socket) -> None:
    """Serve until SIGINT/SIGTERM (blocking)."""
    import uvicorn

    from .app import build_app

    config = uvicorn.Config(
        build_app(state),
        log_level=os.environ.get("BDC_SERVE_LOG_LEVEL", "warning"),
        access_log=False,
        timeout_graceful_shutdown=2,  # streams in flight are cancelled (and their generation stopped) on exit
        lifespan="off",
    )
    uvicorn.Server(config).run(sockets=[sock])


def serve(settings: Settings, options: ServeOptions, log: TextIO = sys.stderr) -> None:
    """``bdc serve``: load ``options.workers`` instances, then answer until interrupted."""
    from .app import ServeState
    from .pool import InstancePool

    if options.workers < 1:
        raise ConfigError("--workers must be at least 1.")
    if options.queue < 0:
        raise ConfigError("--queue must be 0 or more.")
    if not 0 <= options.port <= 65535:
        raise ConfigError("--port must be between 0 and 65535.")
    key, key_source = resolve_api_key(options.host, options.api_key)
    from ..solver.session import BUNDLE_WORDS

    if options.bundle not in (None, *BUNDLE_WORDS) and not Path(options.bundle).expanduser().exists():
        raise ConfigError(f"The bundle directory {options.bundle} does not exist.")
    solvers = load_instances(settings, options, log)
    try:
        state = ServeState(
            pool=InstancePool(solvers, options.queue),
            model_name=options.model_name,
            api_key=key,
            info=instance_info(solvers[0]),
        )
        sock = bind_socket(options.host, options.port)
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        info = state.info
        what = f"bundle {info['bundle']}" if info["customized"] else f"plain base ({info['bundle_note']})"
        if info["mixture"] == "argmax":
            what += " (arg-max-per-layer approximation)"
        print(
            f"bdc serve: {info['backend']} · {info['base_model']} · {what} · {options.workers} instance(s), "
            f"queue {options.queue}",
            file=log,
        )
        if not is_loopback(options.host):
            print(
                f"bdc serve: bound to {options.host}: reachable from other machines; every request must carry "
                f"the API key (from {key_source}).",
                file=log,
            )
        elif key:
            print(f"bdc serve: requests must carry the API key (from {key_source}).", file=log)
        print(
            f"bdc serve: listening on http://{shown}:{port}/v1 (model '{options.model_name}')",
            file=log,
            flush=True,
        )
        run_server(state, sock)
    finally:
        for s in solvers:
            with contextlib.suppress(Exception):
                s.close()
