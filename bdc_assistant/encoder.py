"""Problem text → embedding e (sentence-transformers, loaded lazily, offline).

The default is the embedded all-MiniLM-L6-v2 (384-d). Embeddings are L2-normalised so cosine similarity
to cluster centroids (paper eq. 12, 16) is a dot product.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BackendUnavailable, ModelError

if TYPE_CHECKING:
    import numpy as np

    from .config import Settings


class Encoder:
    """A sentence-transformers model. Thread-safe; the model loads on the first ``embed`` call."""

    def __init__(self, path: Path, device: str = "cpu") -> None:
        self.path = Path(path)
        self.name = self.path.name if self.path.name != "model" else self.path.parent.name
        self.device = device
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise BackendUnavailable(
                    "sentence-transformers is not installed, so problems cannot be embedded; run `make install`."
                ) from exc
            if not self.path.is_dir():
                raise ModelError(f"The encoder directory {self.path} does not exist.")
            try:
                self._model = SentenceTransformer(str(self.path), device=self.device, local_files_only=True)
            except Exception as exc:  # corrupt files surface as many exception types
                raise ModelError(f"The encoder at {self.path} could not be loaded: {exc}.") from exc
        return self._model

    @property
    def dim(self) -> int:
        model = self._load()
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    def embed(self, texts: list[str]) -> np.ndarray:
        """Return float32 [n, d], L2-normalised."""
        import numpy as np
        import torch

        with self._lock:
            model = self._load()
            # MiniLM is tiny: one thread is faster and steadier (17–57 ms vs 60–1300 ms per query with two on
            # a busy 2-core box) and leaves the cores to the generator. Restore the process setting after.
            threads = torch.get_num_threads()
            if self.device == "cpu" and len(texts) <= 4:
                torch.set_num_threads(1)
            try:
                vecs = model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
            finally:
                torch.set_num_threads(threads)
        return np.asarray(vecs, dtype=np.float32)


_DEFAULT: dict[str, Encoder] = {}


def default_encoder(settings: Settings) -> Encoder:
    """The configured (or embedded) encoder, one instance per path per process."""
    from .models.resolve import encoder_dir

    path = encoder_dir(settings)
    key = str(path)
    if key not in _DEFAULT:
        _DEFAULT[key] = Encoder(path)
    return _DEFAULT[key]
