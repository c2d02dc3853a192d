"""One root for every error the app raises on purpose.

Errors carry a one-sentence message meant for the user; the CLI and the TUI are the only places that
turn them into text. Expected outcomes (a test that times out, a wrong answer) are values, not errors.
"""

from __future__ import annotations


class BdcError(Exception):
    """Root of all bdc-assistant errors. ``str(err)`` is one sentence for the user."""

    exit_code = 1


class ConfigError(BdcError):
    """A bad config file, key or value."""

    exit_code = 2


class ModelError(BdcError):
    """A model file is missing, corrupt, or does not match what was expected."""

    exit_code = 3


class ChecksumError(ModelError):
    """A file's sha256 does not match the expected digest."""


class BackendUnavailable(BdcError):
    """A backend's dependency is missing, or the hardware it needs (CUDA) is absent."""

    exit_code = 4


class BundleError(BdcError):
    """A solver bundle is corrupt, truncated, or made for another base model."""

    exit_code = 5


class SandboxError(BdcError):
    """The sandbox cannot be set up on this machine (it refuses rather than degrading silently)."""

    exit_code = 6


class ProviderError(BdcError):
    """An LLM provider failed in a way retries cannot fix (auth, bad model, exhausted retries)."""

    exit_code = 7


class ConsentError(BdcError):
    """Deep mode was asked for without the user's recorded consent."""

    exit_code = 8


class KeyringUnavailable(BdcError):
    """No OS keyring backend is available on this machine."""

    exit_code = 9


class StoreError(BdcError):
    """The SQLite store is unreadable or from a newer schema."""

    exit_code = 10


class DatasetError(BdcError):
    """A dataset file or directory is missing or malformed."""

    exit_code = 11


class Cancelled(BdcError):
    """The user cancelled a running operation."""

    exit_code = 130


class Busy(BdcError):
    """Another process holds the lock for this job (e.g. a second `bdc retrain` from cron)."""

    exit_code = 75
