"""A real `python -m llama_cpp.server` on 127.0.0.1 for the slow deep-mode tests (one process, several models)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def llama_cpp_server(models: dict[str, Path], workdir: Path, *, n_threads: int = 1) -> Iterator[str]:
    """Serve ``{alias: gguf}`` (chat_format chatml) and yield the OpenAI base URL; the server stops after."""
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] is not installed")
    port = free_port()
    conf = workdir / "server.json"
    common = {"n_ctx": 2048, "n_threads": n_threads, "verbose": False, "chat_format": "chatml"}
    conf.write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "port": port,
                "models": [
                    {"model": str(path), "model_alias": alias, **common} for alias, path in models.items()
                ],
            }
        )
    )
    log = conf.with_suffix(".log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--config_file", str(conf)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.time() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"llama_cpp.server did not start: {conf.with_suffix('.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
