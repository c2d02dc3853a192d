"""Install-time smoke test: load the embedded base model with the installed llama.cpp build and generate a
few tokens, in a child process, so that a build the CPU cannot run (SIGILL) fails the install with one
sentence naming the CPU and the build flags instead of a crash later in the app.

    python scripts/smoke_llama.py [GGUF]      # exit 0 when the child generated tokens
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llama_build import cpu_name

_CHILD = """
import sys
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=128, n_threads=1, verbose=False)
out = llm("def add(a, b):", max_tokens=4, temperature=0.0)
print(repr(out["choices"][0]["text"]))
"""


def _default_gguf() -> str:
    from bdc_assistant.models.embedded import base_gguf_path

    return str(base_gguf_path())


def _flags() -> str:
    marker = Path(sys.prefix) / "bdc-llama-build.txt"
    return marker.read_text().strip() if marker.is_file() else "unknown flags (no build marker in this venv)"


def main(argv: list[str]) -> int:
    gguf = argv[1] if len(argv) > 1 else _default_gguf()
    proc = subprocess.run([sys.executable, "-c", _CHILD, gguf], capture_output=True, text=True, timeout=300)
    if proc.returncode == 0:
        print(f"llama.cpp smoke test passed on {cpu_name()}: generated {proc.stdout.strip()}")
        return 0
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        print(
            f"The llama.cpp build crashed with {name} loading {Path(gguf).name} on this CPU ({cpu_name()}) "
            f"with build flags {_flags()}; rebuild with other flags (BDC_LLAMA_CMAKE_ARGS=...) and `make install`.",
            file=sys.stderr,
        )
        return 1
    last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    print(f"The llama.cpp smoke test failed (exit {proc.returncode}) loading {gguf}: {last}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
