from __future__ import annotations

import numpy as np
import pytest

from bdc_assistant.config import load_settings
from bdc_assistant.encoder import Encoder, default_encoder
from bdc_assistant.errors import ModelError


@pytest.mark.slow
def test_embedded_encoder_gives_normalised_offline_embeddings(tmp_path) -> None:
    enc = default_encoder(load_settings(tmp_path / "none.toml"))
    e = enc.embed(["reverse a string", "reverse a string in python", "compute a shortest path in a graph"])
    assert e.shape == (3, 384) and e.dtype == np.float32
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2]  # semantic, not random


def test_missing_encoder_dir_is_one_sentence(tmp_path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        Encoder(tmp_path / "nope").embed(["x"])
