#!/bin/bash
# llama.cpp-only device call: in-place gates vs reload, on the host CPU.
source .devbench/env.sh
$PY $D/prep.py $D ${DEV:-cuda} > $OUT/prep.txt 2>&1 || { tail $OUT/prep.txt; exit 1; }
G=/tmp/m/qwen2.5-coder-0.5b-instruct-zero.gguf
run() { timeout 150 $PY bench/customize.py --gguf $G --encoder /tmp/minilm --backend llamacpp ${LARGS:---rounds 2 --answers 4} --json "$@" 2>$OUT/err.txt; }
run --threads 16 > $OUT/cpu16_inplace.json; echo "16 inplace rc $?"
run --threads 16 --reload > $OUT/cpu16_reload.json; echo "16 reload rc $?"
run --threads 4 > $OUT/cpu4_inplace.json; echo "4 inplace rc $?"
for f in $OUT/cpu*.json; do echo $f; $PY -c "import json,sys;d=json.load(open('$f'));print({k:d.get(k) for k in ['setup_ms','setup_breakdown_ms','decode_ratio','ttft_ratio','answer_time_ratio','adapter_loads','in_place_patches']})"; done
