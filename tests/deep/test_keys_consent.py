"""Keys (keyring + env override, no-keyring message) and consent (nothing is sent before it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail

from bdc_assistant import keys
from bdc_assistant.deep.consent import ensure_consent, has_consent
from bdc_assistant.deep.llm import Budgets
from bdc_assistant.deep.providers.presets import key_envs, provider_key
from bdc_assistant.errors import ConsentError, KeyringUnavailable, ProviderError

from .conftest import ADD, make_runner
from .memkeyring import FileKeyring

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def file_keyring(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_KEYRING_FILE", str(tmp_path / "ring.json"))
    old = keyring.get_keyring()
    keyring.set_keyring(FileKeyring())
    yield tmp_path / "ring.json"
    keyring.set_keyring(old)


@pytest.fixture
def no_keyring():
    old = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(old)


def test_keyring_set_get_list_rm_and_env_override(file_keyring, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    keys.set_key("openai", "sk-from-keyring-123456")
    assert provider_key("openai") == ("sk-from-keyring-123456", "keyring")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-abcdef")
    assert provider_key("openai") == ("sk-from-env-abcdef", "OPENAI_API_KEY")
    # the preset's variable counts in deep mode only
    assert keys.get_key("openai") == ("sk-from-keyring-123456", "keyring")
    monkeypatch.setenv("BDC_KEY_OPENAI", "sk-bdc-env-999999")
    assert provider_key("openai") == ("sk-bdc-env-999999", "BDC_KEY_OPENAI")
    listed = {k.provider: k for k in keys.list_keys(key_envs())}
    assert listed["openai"].source == "BDC_KEY_OPENAI"
    assert "999999" not in listed["openai"].masked
    assert keys.delete_key("openai") is True
    assert keys.delete_key("openai") is False


def test_no_keyring_backend_gives_the_env_route(no_keyring, monkeypatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(KeyringUnavailable, match=r"export .*API_KEY"):
        keys.set_key("anthropic", "sk-whatever-123")
    assert provider_key("anthropic") is None  # not an error: there is just no key
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env-123456")
    assert provider_key("anthropic") == ("sk-ant-env-123456", "ANTHROPIC_API_KEY")


def test_bad_provider_name_is_one_sentence() -> None:
    with pytest.raises(Exception, match="Bad provider name"):
        keys.get_key("../etc")


def test_redactor_scrubs_every_occurrence() -> None:
    r = keys.Redactor(["sk-secret-123456", "abc"])
    assert r.scrub("a sk-secret-123456 b sk-secret-123456 abc") == "a [REDACTED] b [REDACTED] abc"


def _cli(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bdc_assistant", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


@pytest.mark.slow
def test_keys_cli_roundtrip_and_no_keyring_message(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "PYTHON_KEYRING_BACKEND": "tests.deep.memkeyring.FileKeyring",
        "TEST_KEYRING_FILE": str(tmp_path / "ring.json"),
    }
    r = _cli(["keys", "set", "anthropic"], env, stdin="sk-ant-cli-7654321\n")
    assert r.returncode == 0, r.stderr
    r = _cli(["keys", "list"], env)
    assert "anthropic" in r.stdout and "keyring" in r.stdout and "7654321" not in r.stdout
    r = _cli(["keys", "rm", "anthropic"], env)
    assert "removed" in r.stdout
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    r = _cli(["keys", "set", "openai"], env, stdin="sk-x-123456\n")
    assert r.returncode == KeyringUnavailable.exit_code
    assert r.stderr.startswith("bdc: No OS keyring backend") and "OPENAI_API_KEY" in r.stderr


def test_missing_required_key_says_how_to_set_it(store) -> None:
    runner = make_runner(store, ["https://api.anthropic.com"])
    with pytest.raises(ProviderError, match="bdc keys set anthropic"):
        runner.run(ADD, ["anthropic::claude-3-5-haiku-20241022"], Budgets(max_calls=2, budget_usd=0.1))


def test_nothing_is_sent_without_consent(server, store) -> None:
    runner = make_runner(store, [server.url], consent=False)
    with pytest.raises(ConsentError):
        runner.run(ADD, [f"openai:{server.url}:model-a"], Budgets(max_calls=5, budget_usd=0))
    assert server.script.requests == []


def test_consent_flows(server, store) -> None:
    urls = [server.url]
    with pytest.raises(ConsentError, match="--yes"):
        ensure_consent(store, urls, yes=False, run_id="r1", ask=None)
    with pytest.raises(ConsentError, match="declined"):
        ensure_consent(store, urls, yes=False, run_id="r1", ask=lambda text: False)
    assert ensure_consent(store, urls, yes=True, run_id="r1", ask=None) == "yes"
    assert has_consent(store, urls, "r1") and not has_consent(store, urls, "r2")
    shown: list[str] = []
    assert (
        ensure_consent(store, urls, yes=False, run_id="r2", ask=lambda t: shown.append(t) or True) == "asked"
    )
    assert "127.0.0.1" in shown[0] and "public tests" in shown[0]
    assert has_consent(store, urls, "r3")  # "always" covers later runs to the same host
    assert not has_consent(store, ["https://api.openai.com/v1"], "r3")  # a new recipient asks again
    rows = store.consents()
    assert [r["scope"] for r in rows] == ["run", "always"] and all(
        r["granted_at"] > 0 and r["version"] == 1 for r in rows
    )
