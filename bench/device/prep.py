"""Device-side preparation: the zero-weight Qwen GGUF, its HF dir (random bf16 weights), a MiniLM-shaped
random sentence-transformers dir. Speed does not depend on weight values; the real files cannot travel."""
import gzip, json, shutil, sys, time
from pathlib import Path

t0 = time.time()
root = Path(sys.argv[1])
dev = sys.argv[2] if len(sys.argv) > 2 else "cpu"
m = Path("/tmp/m"); m.mkdir(exist_ok=True)
gguf = m / "qwen2.5-coder-0.5b-instruct-zero.gguf"
if not gguf.exists():
    with gzip.open(root / "qwen-zero.gguf.gz") as src, open(gguf, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 24)
print("gguf", gguf.stat().st_size, round(time.time() - t0, 1), flush=True)

import torch
from transformers import AutoConfig, AutoModelForCausalLM, BertConfig, BertModel
from bdc_assistant.models.hf_cache import MARKER, cache_dir_for
from bdc_assistant.models.embedded import cached_sha256

hf = cache_dir_for(gguf)
if not (hf / MARKER).exists():
    hf.mkdir(parents=True, exist_ok=True)
    for f in (root / "hf").iterdir():
        if f.name.endswith(".gz"):
            with gzip.open(f) as src, open(hf / f.name[:-3], "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            shutil.copy(f, hf / f.name)
    cfg = AutoConfig.from_pretrained(hf)
    torch.manual_seed(0)
    with torch.device(dev):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.save_pretrained(hf)
    (hf / MARKER).write_text(json.dumps({"gguf": gguf.name, "sha256": cached_sha256(gguf)}))
print("hf", hf, round(time.time() - t0, 1), flush=True)

enc = Path("/tmp/minilm")
if not (enc / "model.safetensors").exists():
    shutil.copytree(root / "minilm", enc, dirs_exist_ok=True)
    torch.manual_seed(0)
    bert = BertModel(BertConfig.from_pretrained(enc))
    bert.save_pretrained(enc)
print("encoder", enc, round(time.time() - t0, 1), flush=True)
