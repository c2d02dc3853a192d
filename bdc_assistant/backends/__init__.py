"""Generation backends behind one ``Generator`` port (``base.py``).

``select.open_generator`` picks llama.cpp (CPU, GGUF, ``llamacpp_backend``) or torch/transformers
(CUDA or CPU, HF dir, ``torch_backend``). Nothing here imports torch or llama_cpp at import time.
"""
