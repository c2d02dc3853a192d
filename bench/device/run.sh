#!/bin/bash
# One device call: GPU tests, torch-on-CUDA customize bench, llama.cpp customize bench on the host CPU.
source .devbench/env.sh
{ nproc; lscpu | grep -E "Model name|^CPU\(s\)"; lscpu | grep -o -E "avx512f|avx2" | sort -u | tr '\n' ' '; echo;
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; $PY -c "import torch,transformers;print(torch.__version__,transformers.__version__)"; } 2>&1 | tee $OUT/machine.txt
DEV=${DEV:-cuda}
$PY $D/prep.py $D $DEV || exit 1
G=/tmp/m/qwen2.5-coder-0.5b-instruct-zero.gguf
if [ "$DEV" = cuda ]; then
  timeout 150 $PY -m pytest -q -p no:cacheprovider tests/gpu tests/disen/test_torch_merge_stacks.py 2>&1 | tail -6 | tee $OUT/gpu_tests.txt
  timeout 200 $PY bench/customize.py --gguf $G --encoder /tmp/minilm --backend torch --device cuda --rounds 4 --torch-tokens 128 --json > $OUT/customize_cuda.json 2> $OUT/cuda.err; echo "cuda rc $?"; tail -3 $OUT/cuda.err
fi
for T in ${THREADS:-16 4}; do
  timeout 240 $PY bench/customize.py --gguf $G --encoder /tmp/minilm --backend llamacpp --threads $T ${LARGS:---rounds 4} --json > $OUT/customize_cpu$T.json 2> $OUT/cpu$T.err; echo "cpu$T rc $?"; tail -3 $OUT/cpu$T.err
done
cat $OUT/*.json | cut -c1-3000
