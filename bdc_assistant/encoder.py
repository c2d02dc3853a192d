"""Problem text → embedding e, loaded lazily, offline.

The default is the embedded all-MiniLM-L6-v2 (384-d). Embeddings are L2-normalised so cosine similarity
to cluster centroids (paper eq. 12, 16) is a dot product. Two implementations of one port (``embed``,
``dim``, ``name``): ``Encoder`` runs the sentence-transformers directory on torch (the trainer's and the
reference), ``LlamaCppEncoder`` runs the same model converted to GGUF on llama.cpp (the app's default
when the conversion passed its parity check: twice as fast per query, and no torch on the llama.cpp
answer path; see ``models.encoder_gguf``). ``[models] encoder_backend`` picks one.
"""

from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BackendUnavailable, ModelError

if TYPE_CHECKING:
    import numpy as np

    from .config import Settings
    from .models import encoder_gguf


class Encoder:
    """A sentence-transformers model. Thread-safe; the model loads on the first ``embed`` call."""

    def __init__(self, path: Path, device: str = "cpu") -> None:
        self.path = Path(path)
        from .models.encoder_gguf import model_name

        self.name = model_name(self.path)
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


class LlamaCppEncoder:
    """A BERT sentence encoder converted to GGUF (``models.encoder_gguf``), on llama.cpp. Thread-safe; the
    model loads on the first ``embed`` call. Texts are cut to ``max_tokens`` exactly as sentence-transformers
    cuts them: [CLS], the first max_tokens - 2 pieces, [SEP]."""

    def __init__(self, gguf_path: Path, *, max_tokens: int, threads: int = 1, name: str = "") -> None:
        self.path = Path(gguf_path)
        self.name = name or self.path.name.rsplit("-", 1)[0]  # files are named {model}-{fingerprint}.f16.gguf
        self.max_tokens = int(max_tokens)
        self.threads = max(1, int(threads))
        self._llm: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._llm is None:
            try:
                import llama_cpp
            except ImportError as exc:
                raise BackendUnavailable("llama-cpp-python is not installed; run `make install`.") from exc
            if not self.path.is_file():
                raise ModelError(f"The converted encoder {self.path} does not exist.")
            n = max(self.max_tokens, 8)
            try:
                # one sequence at a time: BERT attends over the whole text, so it must fit one micro-batch
                self._llm = llama_cpp.Llama(
                    str(self.path),
                    embedding=True,
                    n_ctx=n,
                    n_batch=n,
                    n_ubatch=n,
                    n_threads=self.threads,
                    n_threads_batch=self.threads,
                    pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                    verbose=False,
                )
            except Exception as exc:  # llama.cpp reports a bad file as a generic ValueError
                raise ModelError(f"The converted encoder {self.path} could not be loaded: {exc}.") from exc
            # freed before interpreter teardown: llama_cpp's own finalizer fails once its globals are gone
            atexit.register(self.close)
        return self._llm

    def tokens(self, text: str) -> list[int]:
        """The ids the model sees: [CLS] … [SEP], cut to the window the way sentence-transformers cuts."""
        llm = self._load()
        ids = list(llm.tokenize(text.encode("utf-8"), add_bos=True, special=False))
        if len(ids) > self.max_tokens:
            ids = [*ids[: self.max_tokens - 1], ids[-1]]
        return ids

    def tokens_match(self, src: Path, texts: tuple[str, ...] | list[str]) -> bool:
        """Whether ``tokens`` equals the HF tokenizer of the source directory on ``texts`` (a diagnostic)."""
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(Path(src) / "tokenizer.json"))
        tok.no_padding()
        tok.enable_truncation(self.max_tokens)
        return all(self.tokens(t) == tok.encode(t).ids for t in texts)

    @property
    def dim(self) -> int:
        return int(self._load().n_embd())

    def embed(self, texts: list[str]) -> np.ndarray:
        """Return float32 [n, d], L2-normalised."""
        import llama_cpp
        import numpy as np

        with self._lock:
            llm = self._load()
            ctx = llm._ctx  # the high-level API would re-tokenize without the window cut
            n_embd = llm.n_embd()
            out = np.empty((len(texts), n_embd), np.float32)
            for i, text in enumerate(texts):
                llm._batch.reset()
                llm._batch.add_sequence(self.tokens(text), 0, True)
                ctx.kv_cache_clear()
                ctx.decode(llm._batch)
                ptr = llama_cpp.llama_get_embeddings_seq(ctx.ctx, 0)
                if not ptr:
                    raise ModelError(f"The converted encoder {self.path} returned no embedding.")
                out[i] = np.ctypeslib.as_array(ptr, shape=(n_embd,))
            llm._batch.reset()
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)

    def close(self) -> None:
        with self._lock:
            if self._llm is not None:
                atexit.unregister(self.close)
                self._llm.close()
                self._llm = None


def check_conversion(src: Path, gguf_path: Path) -> encoder_gguf.Verdict:
    """Embed the fixed probes with sentence-transformers and with the converted file; the worst cosine and the
    token ids decide whether the app may use the conversion."""
    import numpy as np

    from .models import encoder_gguf

    probes = list(encoder_gguf.PROBES)
    reference = Encoder(Path(src)).embed(probes)
    candidate = LlamaCppEncoder(Path(gguf_path), max_tokens=encoder_gguf.max_tokens(src), threads=1)
    try:
        ours = candidate.embed(probes)
        tokens_match = candidate.tokens_match(Path(src), probes)
    finally:
        candidate.close()
    floor = encoder_gguf.MIN_PARITY_COSINE
    min_cos = float(np.min(np.sum(reference * ours, axis=1)))
    ok = min_cos >= floor and tokens_match
    reason = (
        ""
        if ok
        else f"cosine to sentence-transformers {min_cos:.4f} < {floor}"
        if min_cos < floor
        else "its tokens differ from the Hugging Face tokenizer's"
    )
    return encoder_gguf.Verdict(
        ok=ok,
        min_cosine=round(min_cos, 7),
        probes=len(probes),
        tokens_match=tokens_match,
        reason=reason,
        bytes=Path(gguf_path).stat().st_size,
    )


def prepare_llamacpp(src: Path) -> tuple[Path, encoder_gguf.Verdict]:
    """The encoder at ``src`` converted for llama.cpp and checked (once per machine, in the models dir)."""
    from .models import encoder_gguf
    from .paths import app_paths

    return encoder_gguf.prepare(src, app_paths().models_dir, check_conversion)


AnyEncoder = Encoder | LlamaCppEncoder

_DEFAULT: dict[tuple[str, str], AnyEncoder] = {}


def default_encoder(settings: Settings) -> AnyEncoder:
    """The configured (or embedded) encoder, one instance per path and backend per process.

    ``encoder_backend = auto`` takes llama.cpp when the directory converts and the conversion passed its
    parity check (converted and checked once per machine, on this first call), else sentence-transformers;
    ``llamacpp`` refuses, with one sentence, a model that cannot be converted or did not pass.
    """
    from .models.resolve import encoder_dir

    path = encoder_dir(settings)
    backend = settings.models.encoder_backend
    key = (str(path), backend)
    if key not in _DEFAULT:
        _DEFAULT[key] = select_encoder(path, backend)
    return _DEFAULT[key]


def encoder_threads() -> int:
    """llama.cpp threads for one query's embedding: 2 halve MiniLM's time against 1 (6.3 vs 10.8 ms on a
    2-core AMD EPYC); past 4 a 256-token BERT has nothing left to split."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def select_encoder(path: Path, backend: str = "auto", *, threads: int = 0) -> AnyEncoder:
    """The encoder for ``path`` on ``backend`` (see ``default_encoder``); ``threads`` 0 = ``encoder_threads``."""
    if backend == "sentence-transformers":
        return Encoder(path)
    from .models import encoder_gguf

    try:
        gguf, verdict = prepare_llamacpp(path)
    except (encoder_gguf.UnsupportedEncoder, BackendUnavailable):
        if backend == "llamacpp":
            raise
        return Encoder(path)
    if not verdict.ok:
        if backend == "llamacpp":
            raise ModelError(
                f"The encoder at {path} converted to llama.cpp does not match sentence-transformers "
                f'({verdict.reason}); set [models] encoder_backend = "sentence-transformers".'
            )
        return Encoder(path)
    return LlamaCppEncoder(
        gguf,
        max_tokens=encoder_gguf.max_tokens(path),
        threads=threads or encoder_threads(),
        name=encoder_gguf.model_name(path),
    )
