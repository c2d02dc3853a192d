"""The customized llama.cpp answer path loads no torch: encoder on llama.cpp, numpy hypernetwork, q8_0 patch.

Importing torch costs seconds and hundreds of MB on the first customized answer of a session; on the
llama.cpp backend nothing needs it (bench/encoder.py measures the difference).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bdc_assistant
from bdc_assistant.config import load_settings
from bdc_assistant.encoder import default_encoder

CODE = """
import json, sys
from pathlib import Path
from bdc_assistant.config import load_settings
from bdc_assistant.backends.llamacpp_backend import LlamaCppGenerator
from bdc_assistant.solver.customize import open_customizer
gen = LlamaCppGenerator(Path(sys.argv[1]), n_ctx=256, threads=2)
cust = open_customizer(load_settings(Path(sys.argv[3])), Path(sys.argv[2]), gen)
gen.set_customization(cust.for_query("Write a function to reverse a string."))
print(json.dumps(["torch" in sys.modules, gen._slot._dtype, gen._slot.loads]))
"""


def test_customized_llamacpp_answer_path_imports_no_torch(embedded_base_gguf: Path, tmp_path: Path) -> None:
    default_encoder(load_settings(tmp_path / "none.toml"))  # converted and checked once per machine
    bundle = Path(bdc_assistant.__file__).parent / "assets" / "bundles" / "coder-0.5b"
    out = subprocess.run(
        [sys.executable, "-c", CODE, str(embedded_base_gguf), str(bundle), str(tmp_path / "none.toml")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [False, "q8_0", 1]
