"""API keys: the OS keyring (service "bdc-assistant"), overridden by environment variables.

Lookup order for a key named ``p``: ``BDC_KEY_<P>``, then the variables the caller names (deep mode names
the provider preset's own, ``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, …: see
:func:`bdc_assistant.deep.providers.presets.provider_key`), then the keyring. A machine with no keyring backend (headless Linux without
Secret Service) gets :class:`KeyringUnavailable` with the env-var route spelled out, never a silent
plaintext file. Keys never reach logs, the database or exports: :class:`Redactor` scrubs every text the
store writes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .errors import ConfigError, KeyringUnavailable

SERVICE = "bdc-assistant"
REDACTED = "[REDACTED]"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,40}$")


def env_names(provider: str, extra: Sequence[str] = ()) -> list[str]:
    """The environment variables that hold the key, in the order they are tried."""
    return [f"BDC_KEY_{provider.upper().replace('-', '_')}", *extra]


def _check_name(provider: str) -> str:
    provider = provider.strip().lower()
    if not _NAME.match(provider):
        raise ConfigError(f"Bad provider name '{provider}': use letters, digits, '-' or '_' (e.g. openai).")
    return provider


def _backend():  # type: ignore[no-untyped-def]
    """The usable keyring backend, or KeyringUnavailable naming the env-var route."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError as exc:  # pragma: no cover - keyring is a dependency
        raise KeyringUnavailable(
            "The keyring package is not installed; set keys in the environment."
        ) from exc
    backend = keyring.get_keyring()
    names = {type(backend).__name__, type(backend).__module__}
    if isinstance(backend, fail.Keyring) or "keyring.backends.null" in names or _priority(backend) <= 0:
        raise KeyringUnavailable(
            "No OS keyring backend is available on this machine; set the key in the environment instead, "
            "e.g. `export OPENAI_API_KEY=...` or `export BDC_KEY_<PROVIDER>=...`."
        )
    return backend


def _priority(backend: object) -> float:
    try:
        return float(backend.priority)  # type: ignore[attr-defined]
    except Exception:
        return 1.0


def keyring_available() -> bool:
    try:
        _backend()
        return True
    except KeyringUnavailable:
        return False


@dataclass(frozen=True)
class KeyInfo:
    provider: str
    source: str  # env var name or "keyring"
    masked: str


def mask(key: str) -> str:
    return f"{key[:3]}…{key[-2:]} ({len(key)} chars)" if len(key) >= 8 else "…"


def get_key(provider: str, extra_env: Sequence[str] = ()) -> tuple[str, str] | None:
    """(key, source) or None. Env vars win (``BDC_KEY_<P>``, then ``extra_env``); a missing keyring backend
    just means 'not in the keyring'."""
    provider = _check_name(provider)
    for name in env_names(provider, extra_env):
        value = os.environ.get(name, "").strip()
        if value:
            return value, name
    try:
        value = _backend().get_password(SERVICE, provider)
    except KeyringUnavailable:
        return None
    except Exception:  # a locked or broken keyring is "no key", the caller says how to provide one
        return None
    return (value, "keyring") if value else None


def set_key(provider: str, value: str) -> None:
    provider = _check_name(provider)
    value = value.strip()
    if not value:
        raise ConfigError("The key is empty; nothing was stored.")
    _backend().set_password(SERVICE, provider, value)
    _remember(provider, add=True)


def delete_key(provider: str) -> bool:
    provider = _check_name(provider)
    backend = _backend()
    try:
        import keyring.errors

        backend.delete_password(SERVICE, provider)
    except keyring.errors.PasswordDeleteError:
        _remember(provider, add=False)
        return False
    _remember(provider, add=False)
    return True


_INDEX = "__providers__"  # keyring has no portable "list": we keep the names (not the keys) in one entry


def _remember(provider: str, *, add: bool) -> None:
    backend = _backend()
    names = set(filter(None, (backend.get_password(SERVICE, _INDEX) or "").split(",")))
    names = names | {provider} if add else names - {provider}
    backend.set_password(SERVICE, _INDEX, ",".join(sorted(names)))


def list_keys(known: Mapping[str, Sequence[str]] | None = None) -> list[KeyInfo]:
    """Providers with a key available, and where it comes from (masked). ``known`` maps provider names
    to their extra environment variables."""
    known = known or {}
    names = set(known)
    names |= {v[len("BDC_KEY_") :].lower() for v in os.environ if v.startswith("BDC_KEY_") and os.environ[v]}
    try:
        stored = _backend().get_password(SERVICE, _INDEX) or ""
        names |= set(filter(None, stored.split(",")))
    except KeyringUnavailable:
        pass
    out: list[KeyInfo] = []
    for name in sorted(names):
        try:
            found = get_key(name, known.get(name, ()))
        except ConfigError:
            continue
        if found:
            out.append(KeyInfo(name, found[1], mask(found[0])))
    return out


class Redactor:
    """Replaces every known secret in a text with ``[REDACTED]`` (keys shorter than 6 chars are ignored:
    they cannot be told apart from ordinary words)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for s in secrets:
            self.add(s)

    def add(self, secret: str | None) -> None:
        if secret and len(secret.strip()) >= 6:
            self._secrets.add(secret.strip())

    def scrub(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text
