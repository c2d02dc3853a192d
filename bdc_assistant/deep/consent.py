"""Consent for deep mode: nothing leaves the machine until the user has agreed, once, to what is sent and
to whom. Consent is recorded in the store with its time, the text's version and the recipients (hosts).

- ``scope="always"``: given interactively; covers later runs to the same hosts with the same text version.
- ``scope="run"``: ``bdc deep --yes``; covers that one run (and its resume) only.

A new recipient host or a new version of the text asks again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from urllib.parse import urlparse

from ..errors import ConsentError
from ..store.runs import RunStore

CONSENT_VERSION = 1

_TEXT = """Deep mode sends data to the LLM providers below so that several models can search for a solution
together. For every problem it sends: the problem statement, its public tests (yours, the examples in the
statement, and any generated ones), the partial plans ("thoughts") and programs the models write, and the
failing-test outputs and execution traces of those programs. It does not send your files, your chats, your
API keys to anyone but their own provider, or any hidden/private tests.

Recipients:
{recipients}

Each provider's own data policy applies. Responses are cached in the local database."""


def hosts(base_urls: Sequence[str]) -> list[str]:
    out = []
    for url in base_urls:
        parsed = urlparse(url)
        host = parsed.hostname or url
        out.append(f"{host}:{parsed.port}" if parsed.port else host)
    return sorted(set(out))


def consent_text(base_urls: Sequence[str]) -> str:
    lines = "\n".join(f"  - {h}" for h in hosts(base_urls))
    return _TEXT.format(recipients=lines)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def has_consent(store: RunStore, base_urls: Sequence[str], run_id: str | None = None) -> bool:
    wanted = set(hosts(base_urls))
    granted: set[str] = set()
    for c in store.consents():
        if c["version"] != CONSENT_VERSION:
            continue
        if c["scope"] == "always" or (c["scope"] == "run" and run_id is not None and c["run_id"] == run_id):
            granted |= set(c["recipients"])
    return wanted <= granted


def record_consent(
    store: RunStore, base_urls: Sequence[str], *, scope: str, run_id: str | None = None
) -> None:
    text = consent_text(base_urls)
    store.add_consent(CONSENT_VERSION, scope, run_id, hosts(base_urls), _sha(text))


def ensure_consent(
    store: RunStore,
    base_urls: Sequence[str],
    *,
    yes: bool,
    run_id: str,
    ask: Callable[[str], bool] | None,
) -> str:
    """Return how consent was obtained ("recorded", "yes", "asked"), or raise ConsentError.

    ``ask`` shows the text and returns the user's answer; it is None when there is no terminal to ask on.
    """
    if has_consent(store, base_urls, run_id):
        return "recorded"
    if yes:
        record_consent(store, base_urls, scope="run", run_id=run_id)
        return "yes"
    if ask is None:
        raise ConsentError(
            "Deep mode sends your problem, tests and the models' code to "
            + ", ".join(hosts(base_urls))
            + "; it needs your consent: run it once in a terminal to be asked, or add --yes to consent for this run."
        )
    if not ask(consent_text(base_urls)):
        raise ConsentError("Deep mode was not started: consent was declined, and nothing was sent.")
    record_consent(store, base_urls, scope="always")
    return "asked"
