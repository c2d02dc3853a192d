"""Apply bdc-assistant's patch to a llama-cpp-python source tree (its vendored llama.cpp) before it is built.

One patch: DisenLoRA adapters marked ``bdc.lora_layout = "fused"`` run as one graph node per adapted matrix
(``scripts/llama_patches/bdc-fused-lora.h`` says why and how). Each edit names the exact text it replaces and
must find it exactly once, so a llama.cpp that moved on fails loudly here instead of building something else.

    python scripts/llama_patch.py SRC_DIR   # patch an unpacked llama_cpp_python-X.Y.Z tree in place
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

PATCH_DIR = Path(__file__).resolve().parent / "llama_patches"
HEADER = PATCH_DIR / "bdc-fused-lora.h"

_ADAPTER_H = (
    "src/llama-adapter.h",
    "    float alpha;\n",
    "    float alpha;\n\n"
    "    // bdc-assistant: lora_b is stored transposed and applied by one fused node (bdc-fused-lora.h)\n"
    "    bool bdc_fused = false;\n",
)
_ADAPTER_FLAG = (
    "src/llama-adapter.cpp",
    "        adapter.alpha = get_kv_f32(llm_kv(LLM_KV_ADAPTER_LORA_ALPHA));\n",
    "        adapter.alpha = get_kv_f32(llm_kv(LLM_KV_ADAPTER_LORA_ALPHA));\n"
    "        {\n"
    '            const int bdc_kid = gguf_find_key(gguf_ctx, "bdc.lora_layout");\n'
    "            adapter.bdc_fused = bdc_kid >= 0 && gguf_get_kv_type(gguf_ctx, bdc_kid) == GGUF_TYPE_STRING &&\n"
    '                std::string(gguf_get_val_str(gguf_ctx, bdc_kid)) == "fused";\n'
    "        }\n",
)
_ADAPTER_SHAPE = (
    "src/llama-adapter.cpp",
    "        } else {\n"
    "            if (model_tensor->ne[0] != w.a->ne[0] || model_tensor->ne[1] != w.b->ne[1]) {\n",
    "        } else if (adapter.bdc_fused) {\n"
    "            // transposed lora_b: [out, r]\n"
    "            if (model_tensor->ne[0] != w.a->ne[0] || model_tensor->ne[1] != w.b->ne[0] || w.a->ne[1] != w.b->ne[1]) {\n"
    '                throw std::runtime_error("tensor \'" + name + "\' has incorrect shape (hint: maybe wrong base model?)");\n'
    "            }\n"
    "        } else {\n"
    "            if (model_tensor->ne[0] != w.a->ne[0] || model_tensor->ne[1] != w.b->ne[1]) {\n",
)
_ADAPTER_ABI = (
    "src/llama-adapter.cpp",
    '#include "llama-adapter.h"\n',
    '#include "llama-adapter.h"\n#include "bdc-fused-lora.h"\n\n'
    "// Lets bdc-assistant tell a patched build from a stock one before it writes a fused adapter.\n"
    'extern "C" LLAMA_API int bdc_fused_lora_abi(void);\n'
    'extern "C" LLAMA_API int bdc_fused_lora_abi(void) { return BDC_FUSED_LORA_ABI; }\n',
)
_GRAPH_INCLUDE = (
    "src/llama-graph.cpp",
    '#include "llama-graph.h"\n',
    '#include "llama-graph.h"\n#include "bdc-fused-lora.h"\n',
)
_GRAPH_APPLY = (
    "src/llama-graph.cpp",
    "        const float scale = lw->get_scale(lora.first->alpha, adapter_scale);\n\n"
    "        ggml_tensor * ab_cur = ggml_mul_mat(\n"
    "                ctx0, lw->b,\n"
    "                ggml_mul_mat(ctx0, lw->a, cur)\n",
    "        const float scale = lw->get_scale(lora.first->alpha, adapter_scale);\n\n"
    "        if (lora.first->bdc_fused) {\n"
    "            const float alpha = lora.first->alpha;\n"
    "            const float fused_scale = alpha ? adapter_scale * alpha / (float) lw->a->ne[1] : adapter_scale;\n"
    "            res = bdc_fused_lora::build(ctx0, res, cur, lw->a, lw->b, fused_scale);\n"
    "            continue;\n"
    "        }\n\n"
    "        ggml_tensor * ab_cur = ggml_mul_mat(\n"
    "                ctx0, lw->b,\n"
    "                ggml_mul_mat(ctx0, lw->a, cur)\n",
)
EDITS = (_ADAPTER_H, _ADAPTER_FLAG, _ADAPTER_SHAPE, _ADAPTER_ABI, _GRAPH_INCLUDE, _GRAPH_APPLY)


def digest() -> str:
    """A short hash of the patch (edits and header): part of the wheel cache key and of the build marker."""
    h = hashlib.sha256(HEADER.read_bytes())
    for path, old, new in EDITS:
        h.update(f"{path}\0{old}\0{new}\0".encode())
    return h.hexdigest()[:12]


def apply(source: Path) -> None:
    """Patch the llama.cpp vendored in ``source`` (an unpacked llama_cpp_python sdist) in place."""
    root = Path(source) / "vendor" / "llama.cpp"
    if not (root / "src").is_dir():
        raise SystemExit(f"{source} has no vendor/llama.cpp/src: not a llama-cpp-python source tree")
    texts: dict[str, str] = {}
    for rel, old, new in EDITS:
        text = texts.get(rel) or (root / rel).read_text()
        if text.count(old) != 1:
            raise SystemExit(
                f"llama.cpp patch: {rel} has {text.count(old)} copies of the text to replace, not 1"
            )
        texts[rel] = text.replace(old, new)
    for rel, text in texts.items():
        (root / rel).write_text(text)
    shutil.copyfile(HEADER, root / "src" / HEADER.name)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    apply(Path(sys.argv[1]))
    print(f"patched {sys.argv[1]} (bdc patch {digest()})")
