"""The solver's entry point: text → embedding → g = f(e, cos(e, μ)) → :class:`Customization`.

``Customizer(bundle, encoder).for_query(text)`` is torch-free on the numpy hypernetwork path, so the
llama.cpp backend never loads torch for it. The encoder is anything with ``embed(texts) -> [n, d]``
(L2-normalised rows; ``bdc_assistant.encoder.Encoder`` in the app, a fake in tests).
"""

from __future__ import annotations

import time
from typing import Protocol

import numpy as np

from ..errors import BundleError
from .bundle import Bundle
from .compose import Customization, gates_from_g

__all__ = ["Customization", "Customizer", "EmbedsText"]


class EmbedsText(Protocol):
    def embed(self, texts: list[str]) -> np.ndarray: ...


class Customizer:
    """Per-query gates for one bundle."""

    def __init__(self, bundle: Bundle, encoder: EmbedsText) -> None:
        # The encoder's dimension is checked on the first query (reading it would load the model now).
        self.bundle = bundle
        self.encoder = encoder

    def for_query(self, text: str) -> Customization:
        """Embed ``text`` and run the hypernetwork; the result carries g, the Gates value and timings."""
        t0 = time.perf_counter()
        e = np.asarray(self.encoder.embed([text]), np.float32)
        if e.ndim != 2 or e.shape[0] != 1:
            raise BundleError(f"The encoder returned an embedding of shape {e.shape}, expected [1, d].")
        norm = float(np.linalg.norm(e[0]))
        if norm > 0 and abs(norm - 1.0) > 1e-3:
            e = e / norm
        t1 = time.perf_counter()
        g, cos = self.bundle.gates_for(e[0])
        t2 = time.perf_counter()
        gates = gates_from_g(g, self.bundle.K, self.bundle.r, cos, self.bundle.cluster_names)
        return Customization(
            bundle=self.bundle,
            g=g,
            gates=gates,
            embed_ms=(t1 - t0) * 1e3,
            hypernet_ms=(t2 - t1) * 1e3,
            label=text[:40],
        )
