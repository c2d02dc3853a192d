"""Glue between the solver and the DisenLoRA runtime: load a bundle for the base the generator holds.

The bundle is checked against the identity of the base that is actually loaded (GGUF sha256 on llama.cpp,
HF config hash on torch), so a bundle trained for another base is refused with one sentence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends.base import Generator
from ..config import Settings

if TYPE_CHECKING:
    from ..disen.bundle import Bundle
    from ..disen.compose import Customization
    from ..disen.identity import BaseIdentity


@dataclass
class Customizer:
    """A loaded bundle plus the encoder; ``for_query`` gives the query's customization."""

    name: str
    path: Path
    bundle: Bundle
    _runtime: Any

    def for_query(self, text: str) -> Customization:
        return self._runtime.for_query(text)


def loaded_base_identity(generator: Generator) -> BaseIdentity | None:
    """The identity of the base model the generator holds, when it can tell."""
    from ..disen.identity import identity_of_gguf, identity_of_hf_dir

    gguf = getattr(generator, "path", None) or getattr(generator, "gguf_path", None)
    if gguf is not None and str(gguf).endswith(".gguf"):
        return identity_of_gguf(Path(gguf))[0]
    hf_dir = getattr(generator, "hf_dir", None)
    if hf_dir is not None:
        return identity_of_hf_dir(Path(hf_dir))[0]
    return None


def open_customizer(settings: Settings, bundle_path: Path, generator: Generator) -> Customizer:
    from ..disen.bundle import load_bundle
    from ..disen.runtime import Customizer as Runtime
    from ..encoder import default_encoder

    bundle = load_bundle(Path(bundle_path), expect_base=loaded_base_identity(generator))
    runtime = Runtime(bundle, default_encoder(settings))
    name = str(bundle.manifest.get("name") or Path(bundle_path).name)
    return Customizer(name=name, path=Path(bundle_path), bundle=bundle, _runtime=runtime)
