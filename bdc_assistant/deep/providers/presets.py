"""Provider presets (``assets/providers.toml``) and agent specs ``PROVIDER:URL:MODEL``.

The URL may itself contain colons (``http://host:8080/v1``): the provider is what precedes the first
colon and the model what follows the last; everything between is the URL (empty = the preset's).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ... import keys
from ...errors import ConfigError
from ...resources import assets_dir

_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


@dataclass(frozen=True)
class Price:
    input: float  # USD per 1M tokens
    output: float

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.input + tokens_out * self.output) / 1e6


@dataclass(frozen=True)
class Preset:
    name: str
    kind: str
    base_url: str
    key_env: str
    key_required: bool
    concurrency: int
    default_price: Price
    models: dict[str, Price]


@dataclass(frozen=True)
class AgentSpec:
    """One agent of a deep run, resolved: which SDK, where, which model, what it costs, whose key."""

    name: str  # policy name in the tree, e.g. "openai:gpt-4o-mini"
    kind: str  # "openai" | "anthropic"
    preset: str  # key name for the keyring / env lookup
    base_url: str
    model: str
    price: Price
    key_required: bool
    concurrency: int
    spec: str  # the user's text

    @property
    def local(self) -> bool:
        return is_local(self.base_url)


def is_local(url: str) -> bool:
    try:
        return (urlparse(url).hostname or "") in _LOCAL_HOSTS
    except ValueError:
        return False


@lru_cache(maxsize=4)
def load_presets(path: str | None = None) -> dict[str, Preset]:
    file = Path(path) if path else assets_dir() / "providers.toml"
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"The provider presets file {file} is missing; reinstall bdc-assistant.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"The provider presets file {file} is not valid TOML: {exc}.") from exc
    out: dict[str, Preset] = {}
    for name, raw in data.get("presets", {}).items():
        out[name] = _preset(name, raw, file)
    return out


def _preset(name: str, raw: dict[str, Any], file: Path) -> Preset:
    try:
        return Preset(
            name=name,
            kind=raw["kind"],
            base_url=raw["base_url"],
            key_env=raw.get("key_env", ""),
            key_required=bool(raw.get("key_required", True)),
            concurrency=int(raw.get("concurrency", 4)),
            default_price=Price(**raw.get("default_price", {"input": 0.0, "output": 0.0})),
            models={m: Price(**p) for m, p in raw.get("models", {}).items()},
        )
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"Provider preset '{name}' in {file} is malformed: {exc}.") from exc


def key_envs() -> dict[str, tuple[str, ...]]:
    """Each preset's own key variable (``OPENAI_API_KEY``, …), tried after ``BDC_KEY_<PRESET>``."""
    return {name: (p.key_env,) if p.key_env else () for name, p in load_presets().items()}


def provider_key(preset: str) -> tuple[str, str] | None:
    """(key, where it came from) for a provider preset, or None."""
    return keys.get_key(preset, key_envs().get(preset, ()))


def parse_agent(spec: str, presets: dict[str, Preset] | None = None) -> AgentSpec:
    """``openai:http://127.0.0.1:8080/v1:gemma`` → AgentSpec. Raises ConfigError with the expected shape."""
    presets = presets if presets is not None else load_presets()
    if spec.count(":") < 2:
        raise ConfigError(
            f"Bad agent '{spec}': expected PROVIDER:URL:MODEL (URL may be empty, e.g. anthropic::MODEL)."
        )
    provider, rest = spec.split(":", 1)
    url, model = rest.rsplit(":", 1)
    provider = provider.strip().lower()
    if provider not in presets:
        raise ConfigError(
            f"Unknown provider '{provider}' in agent '{spec}'; known: {', '.join(sorted(presets))}."
        )
    if not model.strip():
        raise ConfigError(f"Agent '{spec}' names no model (the part after the last colon).")
    preset = presets[provider]
    base_url = url.strip() or preset.base_url
    if url.strip() and not urlparse(base_url).scheme.startswith("http"):
        raise ConfigError(f"Agent '{spec}': the URL must start with http:// or https://.")
    key_preset = preset
    if url.strip():  # a URL that is another preset's endpoint uses that preset's key and prices
        for other in presets.values():
            if other.kind == preset.kind and _same_endpoint(other.base_url, base_url):
                key_preset = other
                break
    local = is_local(base_url)
    price = Price(0.0, 0.0) if local else key_preset.models.get(model, key_preset.default_price)
    return AgentSpec(
        name=f"{provider}:{model}",
        kind=preset.kind,
        preset=key_preset.name,
        base_url=base_url,
        model=model,
        price=price,
        key_required=key_preset.key_required and not local,
        concurrency=key_preset.concurrency,
        spec=spec,
    )


def _same_endpoint(a: str, b: str) -> bool:
    pa, pb = urlparse(a), urlparse(b)
    return (pa.hostname, pa.port) == (pb.hostname, pb.port)


def unique_names(agents: list[AgentSpec]) -> list[AgentSpec]:
    """The same model twice becomes two policies: ``name``, ``name#2``."""
    seen: dict[str, int] = {}
    out: list[AgentSpec] = []
    for a in agents:
        seen[a.name] = seen.get(a.name, 0) + 1
        if seen[a.name] > 1:
            from dataclasses import replace

            a = replace(a, name=f"{a.name}#{seen[a.name]}")
        out.append(a)
    return out
