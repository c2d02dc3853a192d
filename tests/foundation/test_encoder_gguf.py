"""The encoder on llama.cpp: a BERT sentence-transformers directory converted to GGUF, checked, selected.

A tiny random BERT built here gives exact, fast checks of the conversion (and negative controls that must
fail the parity check); the embedded all-MiniLM-L6-v2 checks the real thing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bdc_assistant.config import load_settings
from bdc_assistant.encoder import (
    Encoder,
    LlamaCppEncoder,
    check_conversion,
    default_encoder,
    select_encoder,
)
from bdc_assistant.errors import ModelError
from bdc_assistant.models import encoder_gguf

WORDS = [
    "reverse",
    "a",
    "string",
    "list",
    "sum",
    "of",
    "the",
    "numbers",
    "return",
    "sorted",
    "def",
    "print",
    "each",
    "line",
    "and",
    "count",
    "words",
    "in",
]
TEXTS = [
    "reverse a string",
    "return the sum of the numbers in a list",
    "print each line and count the words",
    # longer than the tiny model's 16-token window: both sides must cut it the same way
    " ".join(WORDS * 3),
    "",
]


def _tiny_bert(root: Path, *, pooling: str = "mean", seed: int = 0) -> Path:
    """A random 2-layer BERT saved the way sentence-transformers saves all-MiniLM-L6-v2."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as st_models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    raw = root / "raw"
    raw.mkdir(parents=True)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *letters, *(f"##{c}" for c in letters)]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(pieces))}
    BertTokenizerFast(vocab=vocab, do_lower_case=True).save_pretrained(raw)
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        initializer_range=0.5,  # BERT's 0.02 leaves a random model near identity: layer order would not show
    )
    BertModel(cfg).save_pretrained(raw, safe_serialization=True)
    word = st_models.Transformer(str(raw), max_seq_length=16)
    pool = st_models.Pooling(word.get_embedding_dimension(), pooling_mode=pooling)
    out = root / "tiny-st"
    SentenceTransformer(modules=[word, pool, st_models.Normalize()], device="cpu").save(str(out))
    return out


@pytest.fixture(scope="module")
def tiny_st(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


def test_tiny_bert_converts_and_matches_sentence_transformers(tiny_st: Path, tmp_path: Path) -> None:
    gguf, verdict = encoder_gguf.prepare(tiny_st, tmp_path, check_conversion)
    assert verdict.ok and verdict.tokens_match, verdict
    assert verdict.min_cosine >= 0.9999
    ours = LlamaCppEncoder(gguf, max_tokens=encoder_gguf.max_tokens(tiny_st)).embed(TEXTS)
    ref = Encoder(tiny_st).embed(TEXTS)
    assert ours.shape == ref.shape == (len(TEXTS), 32) and ours.dtype == np.float32
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(ours * ref, axis=1)) >= 0.9999
    # the stored verdict is what later processes read: no torch, no second check
    assert encoder_gguf.read_verdict(gguf) == verdict


def test_window_cut_matters(tiny_st: Path, tmp_path: Path) -> None:
    """Negative control for the truncation: without the cut the long text's embedding moves."""
    gguf, _ = encoder_gguf.prepare(tiny_st, tmp_path, check_conversion)
    long = [TEXTS[3]]
    ref = Encoder(tiny_st).embed(long)
    cut = LlamaCppEncoder(gguf, max_tokens=16).embed(long)
    uncut = LlamaCppEncoder(gguf, max_tokens=64).embed(long)
    assert float(cut[0] @ ref[0]) >= 0.9999
    assert float(uncut[0] @ ref[0]) < 0.999


def test_vocabulary_without_phantom_spaces_fails_the_check(
    tiny_st: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(encoder_gguf, "_phantom", lambda piece: piece)
    _, verdict = encoder_gguf.prepare(tiny_st, tmp_path, check_conversion)
    assert not verdict.ok and not verdict.tokens_match


def test_swapped_layers_fail_the_check(
    tiny_st: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = encoder_gguf._tensors

    def swapped(src: Path, n_layers: int) -> list:
        out = real(src, n_layers)
        return [
            (n.replace("blk.0.", "blk.#.").replace("blk.1.", "blk.0.").replace("blk.#.", "blk.1."), t)
            for n, t in out
        ]

    monkeypatch.setattr(encoder_gguf, "_tensors", swapped)
    _, verdict = encoder_gguf.prepare(tiny_st, tmp_path, check_conversion)
    assert not verdict.ok and verdict.tokens_match
    assert "cosine" in verdict.reason


def test_failed_check_keeps_sentence_transformers_or_refuses(
    tiny_st: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BDC_MODELS_DIR", str(tmp_path))
    monkeypatch.setattr(encoder_gguf, "_phantom", lambda piece: piece)
    assert isinstance(select_encoder(tiny_st, "auto"), Encoder)
    with pytest.raises(ModelError, match="does not match sentence-transformers"):
        select_encoder(tiny_st, "llamacpp")
    assert isinstance(select_encoder(tiny_st, "sentence-transformers"), Encoder)


def test_unsupported_pooling_keeps_sentence_transformers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _tiny_bert(tmp_path / "cls", pooling="cls")
    monkeypatch.setenv("BDC_MODELS_DIR", str(tmp_path / "models"))
    with pytest.raises(encoder_gguf.UnsupportedEncoder, match="not the mean of its tokens"):
        encoder_gguf.check_supported(src)
    assert isinstance(select_encoder(src, "auto"), Encoder)
    with pytest.raises(ModelError, match="not the mean of its tokens"):
        select_encoder(src, "llamacpp")
    assert not (tmp_path / "models" / "encoders").exists()


def test_changed_file_is_converted_and_checked_again(tiny_st: Path, tmp_path: Path) -> None:
    gguf, verdict = encoder_gguf.prepare(tiny_st, tmp_path, check_conversion)
    with gguf.open("r+b") as fh:  # a torn copy: the stored verdict no longer describes it
        fh.truncate(gguf.stat().st_size // 2)
    assert encoder_gguf.read_verdict(gguf) is None
    again, verdict2 = encoder_gguf.prepare(tiny_st, tmp_path, check_conversion)
    assert again == gguf and verdict2.ok and verdict2.bytes == verdict.bytes


def test_corrupt_converted_file_is_one_sentence(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelError, match="could not be loaded"):
        LlamaCppEncoder(bad, max_tokens=16).embed(["x"])


def test_bad_backend_setting_is_one_sentence(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[models]\nencoder_backend = "onnx"\n', encoding="utf-8")
    with pytest.raises(Exception, match="encoder_backend"):
        load_settings(cfg)


def test_embedded_encoder_runs_on_llamacpp_and_matches(tmp_path: Path) -> None:
    """The app's default: all-MiniLM-L6-v2 converted once per machine, within 1e-4 of sentence-transformers."""
    enc = default_encoder(load_settings(tmp_path / "none.toml"))
    assert isinstance(enc, LlamaCppEncoder)
    from bdc_assistant.models.resolve import encoder_dir

    verdict = encoder_gguf.read_verdict(enc.path)
    assert verdict is not None and verdict.ok and verdict.tokens_match and verdict.min_cosine >= 0.9999
    texts = ["reverse a string", "reverse a string in python", "compute a shortest path in a graph"]
    e = enc.embed(texts)
    assert e.shape == (3, 384) and e[0] @ e[1] > e[0] @ e[2]
    ref = Encoder(encoder_dir(load_settings(tmp_path / "none.toml"))).embed(texts)
    assert np.min(np.sum(e * ref, axis=1)) >= 0.9999


def test_llamacpp_encoder_loads_no_torch(tmp_path: Path) -> None:
    """Once converted, a query's embedding on the llama.cpp path imports neither torch nor sentence-transformers."""
    default_encoder(load_settings(tmp_path / "none.toml"))  # converted and checked (once per machine)
    code = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from bdc_assistant.config import load_settings\n"
        "from bdc_assistant.encoder import default_encoder\n"
        f"enc = default_encoder(load_settings(Path({str(tmp_path / 'none.toml')!r})))\n"
        "e = enc.embed(['reverse a string'])\n"
        "print(json.dumps([type(enc).__name__, e.shape[1], 'torch' in sys.modules,"
        " 'sentence_transformers' in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["LlamaCppEncoder", 384, False, False]


def test_doctor_says_what_runs_the_encoder(
    tiny_st: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (
        encoder_gguf.describe(tiny_st, tmp_path, "sentence-transformers")["runs_on"]
        == "sentence-transformers"
    )
    assert encoder_gguf.describe(tiny_st, tmp_path, "auto")["runs_on"].startswith("llamacpp (after the first")
    encoder_gguf.prepare(tiny_st, tmp_path, check_conversion)
    info = encoder_gguf.describe(tiny_st, tmp_path, "auto")
    assert info["runs_on"] == "llamacpp" and info["parity_min_cosine"] >= 0.9999
    monkeypatch.setattr(encoder_gguf, "_phantom", lambda piece: piece)
    bad = tmp_path / "bad"
    encoder_gguf.prepare(tiny_st, bad, check_conversion)
    assert "failed its parity check" in encoder_gguf.describe(tiny_st, bad, "auto")["note"]


def test_a_new_conversion_replaces_the_old_one(tiny_st: Path, tmp_path: Path) -> None:
    gguf, _ = encoder_gguf.prepare(tiny_st, tmp_path, check_conversion)
    stale = gguf.with_name("tiny-st-000000000000.f16.gguf")
    stale.write_bytes(b"old")
    encoder_gguf.verdict_path(stale).write_text("{}")
    gguf.unlink()  # forces a fresh conversion
    again, verdict = encoder_gguf.prepare(tiny_st, tmp_path, check_conversion)
    assert again == gguf and verdict.ok
    assert sorted(p.name for p in gguf.parent.iterdir()) == sorted(
        [gguf.name, encoder_gguf.verdict_path(gguf).name]
    )


@pytest.mark.parametrize("text", ["{broken", "[1, 2]"])
def test_corrupt_modules_file_is_one_sentence_and_keeps_sentence_transformers(
    tiny_st: Path, tmp_path: Path, text: str
) -> None:
    import shutil

    src = tmp_path / "copy"
    shutil.copytree(tiny_st, src)
    (src / "modules.json").write_text(text, encoding="utf-8")
    with pytest.raises(
        encoder_gguf.UnsupportedEncoder, match=r"modules\.json (could not be read|is not a list)"
    ):
        encoder_gguf.check_supported(src)
    assert isinstance(select_encoder(src, "auto"), Encoder)
