"""The sentence encoder as a llama.cpp GGUF: converted once from its sentence-transformers directory, checked.

Why: on the llama.cpp backend, embedding the query is the largest part of a customized answer's setup.
all-MiniLM-L6-v2 on torch takes ~18 ms on one core, and its first query imports torch (seconds, hundreds
of MB); llama.cpp runs the same BERT in about half the time and keeps the answer path torch-free.

The conversion follows llama.cpp's BERT converter: WordPiece vocabulary with phantom spaces (a word-initial
piece gets "▁", a ``##`` continuation loses its marks), non-causal attention, mean pooling; matrices in f16
(cosine to the f32 model 0.999999 on MiniLM; q8_0 falls to 0.9997 for a 20 MB saving, not worth it). It is
trusted only after its embeddings match sentence-transformers' on a fixed probe set (short and long texts,
code, non-ASCII), and the verdict is stored beside the file, so later processes need neither torch nor the
check. Anything the converter does not know (another architecture, another pooling, a cased vocabulary)
is refused up front and the app keeps sentence-transformers.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import atomic
from ..errors import ModelError

# Bump when the written file changes; old conversions are then redone (the version is in the file name).
CONVERTER_VERSION = 1
# Below this, the llama.cpp encoder is not used: f's gates would move. Measured on MiniLM: 0.999999.
MIN_PARITY_COSINE = 0.999

# Fixed probes for the parity check: what users ask, code, non-ASCII text, and one text longer than the
# encoder's window (sentence-transformers truncates it; llama.cpp must truncate it the same way).
PROBES: tuple[str, ...] = (
    "Write a function to reverse a string.",
    'def is_prime(n: int) -> bool:\n    """Return True if n is a prime number."""',
    "Given an array of N integers, print the length of the longest strictly increasing subsequence.",
    "Écrire une fonction qui renvoie la somme des éléments d'une liste — naïve façade, Straße, 東京, 😀.",
    'assert remove_Occ("hello","l") == "heo"\nassert remove_Occ("abcda","a") == "bcd"',
    " ".join(f"step {i}: parse the input, update the segment tree and answer query {i}." for i in range(60)),
    "",
)


class UnsupportedEncoder(ModelError):
    """The encoder directory is not a model this converter handles (the app keeps sentence-transformers)."""


@dataclass(frozen=True)
class Verdict:
    """What the parity check found for one converted file (stored beside it as JSON)."""

    ok: bool
    min_cosine: float
    probes: int
    tokens_match: bool
    reason: str = ""
    bytes: int = 0  # the checked file's size: a file changed since (truncated, replaced) is checked again


def model_name(src: Path) -> str:
    """The encoder's name: its directory, or the package holding it when the directory is just ``model``."""
    src = Path(src)
    return src.name if src.name != "model" else src.parent.name


def _read_json(path: Path, kind: type = dict) -> Any:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UnsupportedEncoder(f"The encoder file {path} could not be read ({exc}).") from exc
    if not isinstance(data, kind):
        raise UnsupportedEncoder(f"The encoder file {path} is not a JSON {kind.__name__}.")
    return data


def check_supported(src: Path) -> dict[str, Any]:
    """The model's config.json when ``src`` is an uncased BERT with mean pooling and normalisation (the
    sentence-transformers layout of all-MiniLM-L6-v2 and its kin); otherwise UnsupportedEncoder."""
    src = Path(src)
    for name in ("config.json", "modules.json", "tokenizer.json", "model.safetensors"):
        if not (src / name).is_file():
            raise UnsupportedEncoder(f"The encoder directory {src} has no {name}.")
    cfg = _read_json(src / "config.json")
    if cfg.get("model_type") != "bert":
        raise UnsupportedEncoder(f"The encoder at {src} is a {cfg.get('model_type')!r} model, not BERT.")
    tok = _read_json(src / "tokenizer.json")
    model, norm = tok.get("model") or {}, tok.get("normalizer") or {}
    if model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
        raise UnsupportedEncoder(f"The encoder at {src} does not use a WordPiece vocabulary.")
    # llama.cpp's WordPiece tokenizer lowercases and strips accents: right only for uncased vocabularies.
    if (
        norm.get("type") != "BertNormalizer"
        or not norm.get("lowercase")
        or norm.get("strip_accents") is False
    ):
        raise UnsupportedEncoder(
            f"The encoder at {src} has a cased vocabulary, which llama.cpp would lowercase."
        )
    modules = _read_json(src / "modules.json", list)
    if not all(isinstance(m, dict) for m in modules):
        raise UnsupportedEncoder(f"The encoder file {src / 'modules.json'} is not a list of modules.")
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if kinds != ["Transformer", "Pooling", "Normalize"]:
        raise UnsupportedEncoder(
            f"The encoder at {src} has modules {kinds}, not Transformer → Pooling → Normalize."
        )
    pooling_dir = next(m.get("path", "") for m in modules if str(m.get("type", "")).endswith("Pooling"))
    pooling = _read_json(src / pooling_dir / "config.json")
    # sentence-transformers < 6 writes one boolean per mode, later versions one string
    mode = pooling.get("pooling_mode")
    modes = (
        {mode.replace("_tokens", "")}
        if isinstance(mode, str)
        else {
            k.removeprefix("pooling_mode_").replace("_tokens", "")
            for k, v in pooling.items()
            if k.startswith("pooling_mode") and v is True
        }
    )
    if modes != {"mean"}:
        raise UnsupportedEncoder(
            f"The encoder at {src} pools with {sorted(modes)}, not the mean of its tokens."
        )
    return cfg


def max_tokens(src: Path) -> int:
    """The encoder's window, as sentence-transformers cuts texts: its max_seq_length (sentence_bert_config.json
    up to v5, the tokenizer's model_max_length from v6), capped by the position table."""
    src = Path(src)
    limits = [int(_read_json(src / "config.json").get("max_position_embeddings", 512))]
    for name, key in (
        ("sentence_bert_config.json", "max_seq_length"),
        ("tokenizer_config.json", "model_max_length"),
    ):
        value = _read_json(src / name).get(key) if (src / name).is_file() else None
        if isinstance(value, int | float) and 0 < value < 1_000_000:  # HF writes 1e30 for "no limit"
            limits.append(int(value))
    return min(limits)


def gguf_location(src: Path, models_dir: Path) -> Path:
    """Where the converted file lives: named by the source's identity, so a changed model converts anew."""
    src = Path(src).resolve()
    weights = src / "model.safetensors"
    stat = weights.stat()
    ident = hashlib.sha256()
    ident.update(str(src).encode())
    ident.update(f"{stat.st_size}:{stat.st_mtime_ns}:{CONVERTER_VERSION}".encode())
    for name in ("config.json", "tokenizer.json", "sentence_bert_config.json", "modules.json"):
        if (src / name).is_file():
            ident.update((src / name).read_bytes())
    name = model_name(src)
    return Path(models_dir) / "encoders" / f"{name}-{ident.hexdigest()[:12]}.f16.gguf"


def _phantom(piece: str) -> str:
    # llama.cpp's WPM tokenizer matches words against "▁word" and continuations against the bare piece.
    if piece.startswith("[") and piece.endswith("]"):
        return piece
    if piece.startswith("##"):
        return piece[2:]
    return "\u2581" + piece


def _tensors(src: Path, n_layers: int) -> list[tuple[str, Any]]:
    """(GGUF name, array) for every weight llama.cpp's BERT graph reads; matrices f16, the rest f32."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layers)
    out = []
    for name, t in load_file(str(src / "model.safetensors")).items():
        name = name.removeprefix("bert.")
        if name.startswith("pooler.") or name == "embeddings.position_ids":
            continue  # the pooler is not part of sentence-transformers' mean-pooled output
        new = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise UnsupportedEncoder(f"The encoder tensor {name} has no place in llama.cpp's BERT graph.")
        t = np.asarray(t, np.float32)
        if t.ndim == 2 and new != "token_types.weight":
            t = t.astype(np.float16)
        out.append((new, t))
    return out


def convert(src: Path, dest: Path) -> Path:
    """Write ``dest`` (atomically) from the sentence-transformers directory ``src``."""
    import gguf

    src = Path(src)
    cfg = check_supported(src)
    by_id = _read_json(src / "tokenizer.json")["model"]["vocab"]
    vocab = [t for t, _ in sorted(by_id.items(), key=lambda item: int(item[1]))]
    if [int(i) for i in sorted(by_id.values())] != list(range(len(vocab))):
        raise UnsupportedEncoder(f"The encoder vocabulary at {src} has gaps in its ids.")
    index = {t: i for i, t in enumerate(vocab)}
    missing = [t for t in ("[CLS]", "[SEP]", "[UNK]", "[PAD]") if t not in index]
    if missing:
        raise UnsupportedEncoder(f"The encoder vocabulary at {src} lacks {', '.join(missing)}.")
    special = {"[PAD]", "[CLS]", "[SEP]", "[MASK]"}
    n_layers = int(cfg["num_hidden_layers"])
    tensors = _tensors(src, n_layers)
    with atomic.file(Path(dest)) as tmp:
        w = gguf.GGUFWriter(str(tmp), "bert")
        w.add_name(model_name(src))
        # the position table's length: llama.cpp sizes its graph from it (the window is cut in the encoder)
        w.add_context_length(int(cfg["max_position_embeddings"]))
        w.add_embedding_length(int(cfg["hidden_size"]))
        w.add_feed_forward_length(int(cfg["intermediate_size"]))
        w.add_block_count(n_layers)
        w.add_head_count(int(cfg["num_attention_heads"]))
        w.add_layer_norm_eps(float(cfg["layer_norm_eps"]))
        w.add_causal_attention(False)
        w.add_pooling_type(gguf.PoolingType.MEAN)
        w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
        w.add_token_type_count(int(cfg.get("type_vocab_size", 2)))
        w.add_tokenizer_model("bert")
        w.add_tokenizer_pre("default")
        w.add_token_list([_phantom(t) for t in vocab])
        w.add_token_types(
            [
                gguf.TokenType.UNKNOWN
                if t == "[UNK]"
                else gguf.TokenType.CONTROL
                if t in special
                else gguf.TokenType.NORMAL
                for t in vocab
            ]
        )
        w.add_bos_token_id(index["[CLS]"])
        w.add_eos_token_id(index["[SEP]"])
        w.add_sep_token_id(index["[SEP]"])
        w.add_unk_token_id(index["[UNK]"])
        w.add_pad_token_id(index["[PAD]"])
        if "[MASK]" in index:
            w.add_mask_token_id(index["[MASK]"])
        w.add_add_bos_token(True)
        w.add_add_eos_token(True)
        for name, t in tensors:
            w.add_tensor(name, t)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    return Path(dest)


def verdict_path(gguf_path: Path) -> Path:
    return Path(str(gguf_path) + ".parity.json")


def read_verdict(gguf_path: Path) -> Verdict | None:
    """The stored parity verdict, or None when the file was never checked (or the record is unreadable)."""
    path = verdict_path(gguf_path)
    if not path.is_file() or not Path(gguf_path).is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        verdict = Verdict(
            **{k: data[k] for k in ("ok", "min_cosine", "probes", "tokens_match", "reason", "bytes")}
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return verdict if verdict.bytes == Path(gguf_path).stat().st_size else None


def prepare(src: Path, models_dir: Path, check: Callable[[Path, Path], Verdict]) -> tuple[Path, Verdict]:
    """The converted, checked GGUF for ``src`` (converted and checked on first use, then read from disk).

    ``check(src, gguf)`` compares the conversion with the source model (``encoder.check_conversion``:
    it needs both runtimes, which live in ``bdc_assistant.encoder``)."""
    dest = gguf_location(src, models_dir)
    verdict = read_verdict(dest)
    if verdict is not None:
        return dest, verdict
    convert(src, dest)  # also when a file is there: it was never checked, or changed since
    verdict = check(src, dest)
    atomic.write_json(
        verdict_path(dest), {**asdict(verdict), "converter": CONVERTER_VERSION, "source": str(src)}
    )
    _remove_stale(dest)
    return dest, verdict


def _remove_stale(dest: Path) -> None:
    """Drop conversions of an earlier version of the same model (same name, another fingerprint)."""
    ours = re.compile(re.escape(dest.name.rsplit("-", 1)[0]) + r"-[0-9a-f]{12}\.f16\.gguf(\.parity\.json)?")
    for old in dest.parent.iterdir():
        if ours.fullmatch(old.name) and old.name not in (dest.name, verdict_path(dest).name):
            old.unlink(missing_ok=True)


def describe(src: Path, models_dir: Path, backend: str) -> dict[str, Any]:
    """What runs the encoder under ``backend`` (for ``bdc doctor``), read from disk: converts nothing."""
    info: dict[str, Any] = {"configured": backend, "runs_on": "sentence-transformers", "gguf": None}
    if backend == "sentence-transformers":
        return info
    try:
        check_supported(src)
        dest = gguf_location(src, models_dir)
    except (UnsupportedEncoder, OSError) as exc:
        info["note"] = f"stays on sentence-transformers: {exc}"
        return info
    verdict = read_verdict(dest)
    if verdict is None:
        info["runs_on"] = "llamacpp (after the first query converts and checks it)"
        return info
    info.update(gguf=str(dest), parity_min_cosine=verdict.min_cosine)
    if verdict.ok:
        info["runs_on"] = "llamacpp"
    else:
        info["note"] = f"the llama.cpp conversion failed its parity check: {verdict.reason}"
    return info
