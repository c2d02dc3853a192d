"""The real-model fixtures of the serve tests (embedded gemma-3-270m, random K=3 bundle) serve here too."""

from tests.serve.conftest import gemma_bundle, gemma_gguf

__all__ = ["gemma_bundle", "gemma_gguf"]
