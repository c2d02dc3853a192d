#!/bin/bash
# One device call: GPU tests, torch-on-CUDA customize bench, llama.cpp customize bench on the host CPU.
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 BDC_HOME=/tmp/bdc TOKENIZERS_PARALLELISM=false
D=.devbench; OUT=${OUT:-/tmp/out}; mkdir -p $OUT
PY=${PY:-python3}
if [ -z "$LOCAL" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $D/whl/*.whl || exit 1
  cp -r $D/llama_cpp /tmp/site/ && (cd /tmp/site/llama_cpp/lib && for f in *.so; do ln -sf $f $f.0; done)
  ldconfig -p | grep -q libgomp.so.1 || export LD_LIBRARY_PATH=$PWD/$D/gomp
  export PYTHONPATH=/tmp/site:$PWD
fi
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
