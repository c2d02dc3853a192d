"""Device-side preparation for bench/device/run*.sh (runs from .devbench/ on the lent machine).

Makes the zero-weight Qwen GGUF from its gzip, its HF dir (random weights from the real config, where the
app's cache looks for it) and a MiniLM-shaped random sentence-transformers dir. Speed does not depend on
the weights' values; the real files cannot travel.

    python .devbench/prep.py .devbench cuda
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
import time
from pathlib import Path


def main(root: Path, device: str) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, BertConfig, BertModel

    from bdc_assistant.models.embedded import cached_sha256
    from bdc_assistant.models.hf_cache import MARKER, cache_dir_for

    t0 = time.time()
    models = Path("/tmp/m")
    models.mkdir(exist_ok=True)
    gguf = models / "qwen2.5-coder-0.5b-instruct-zero.gguf"
    if not gguf.exists():
        with gzip.open(root / "qwen-zero.gguf.gz") as src, open(gguf, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 24)
    print("gguf", gguf.stat().st_size, round(time.time() - t0, 1), flush=True)

    hf = cache_dir_for(gguf)
    if not (hf / MARKER).exists():
        hf.mkdir(parents=True, exist_ok=True)
        for f in (root / "hf").iterdir():
            if f.name.endswith(".gz"):
                with gzip.open(f) as src, open(hf / f.name[:-3], "wb") as dst:
                    shutil.copyfileobj(src, dst)
            else:
                shutil.copy(f, hf / f.name)
        torch.manual_seed(0)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(hf), dtype=torch.float32)
        model.save_pretrained(hf)
        (hf / MARKER).write_text(json.dumps({"gguf": gguf.name, "sha256": cached_sha256(gguf)}))
    print("hf", hf, round(time.time() - t0, 1), flush=True)

    encoder = Path("/tmp/minilm")
    if not (encoder / "model.safetensors").exists():
        shutil.copytree(root / "minilm", encoder, dirs_exist_ok=True)
        torch.manual_seed(0)
        BertModel(BertConfig.from_pretrained(encoder)).save_pretrained(encoder)
    print("encoder", encoder, round(time.time() - t0, 1), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "cpu")
