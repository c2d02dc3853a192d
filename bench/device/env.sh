# Sourced by run.sh / run_cpu.sh on the device: environment, carried wheels and llama.cpp build on the path.
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 BDC_HOME=/tmp/bdc TOKENIZERS_PARALLELISM=false
D=.devbench; OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; PY=${PY:-python3}
if [ -z "${LOCAL:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $D/whl/*.whl || exit 1
  cp -r $D/llama_cpp /tmp/site/ && (cd /tmp/site/llama_cpp/lib && for f in *.so; do ln -sf $f $f.0; done)
  ldconfig -p | grep -q libgomp.so.1 || export LD_LIBRARY_PATH=$PWD/$D/gomp
  export PYTHONPATH=/tmp/site:$PWD
fi
