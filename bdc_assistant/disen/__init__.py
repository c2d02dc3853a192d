"""DisenLoRA runtime: bundles, the hypernetwork, A_cat/B_cat composition and the backend slots.

Backend-free at import: torch, gguf and llama_cpp are imported inside the functions that need them.
"""
