"""bench/lora_profile.py on a tiny Qwen2: the ggml_tensor mirror matches this llama.cpp build and the LoRA
products are told apart from the base's (the bench's numbers rest on both)."""

from __future__ import annotations

from bdc_assistant.disen.gguf_adapter import write_template

from ..bench_scripts import bench_script


def test_profile_names_every_lora_product_and_none_without_an_adapter(tiny_models, loaded_bundles, tmp_path):
    lora_profile = bench_script("lora_profile")
    bundle = loaded_bundles["qwen2"]
    template = write_template(
        bundle.cat, tmp_path / "t.gguf", arch="qwen2", n_heads=4, n_kv_heads=2, bundle_id="b", dtype="q8_0"
    )
    gguf = tiny_models["qwen2"].gguf_path
    plain = lora_profile.profile(gguf, None, threads=1, tokens=3)
    custom = lora_profile.profile(gguf, template.path, threads=1, tokens=3)
    assert "MUL_MAT base" in plain["ops"] and not any("lora" in op for op in plain["ops"])
    lora = {op: row for op, row in custom["ops"].items() if "lora" in op}
    n_matrices = len(list(bundle.cat.layer_modules()))
    assert sum(row["nodes_per_token"] for op, row in lora.items() if "lora_a q8_0" in op) == n_matrices
    assert sum(row["nodes_per_token"] for op, row in lora.items() if "lora_b q8_0 [32 x" in op) == n_matrices
    assert custom["ops"]["SCALE"]["nodes_per_token"] >= n_matrices
    assert custom["ops"]["MUL_MAT base"]["nodes_per_token"] == plain["ops"]["MUL_MAT base"]["nodes_per_token"]
