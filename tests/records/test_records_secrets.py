"""Secrets (unlock codes, passwords, tokens) never reach the database or the audit log."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from records_helpers import PROTOCOL_HASH, session_plan, train_plan

from tmsctl.core.clock import VirtualClock
from tmsctl.records import ActionKind, DeliveryResult, Fault, OperatorAction, Override, Records
from tmsctl.session.audit import REDACTED, SessionAuditLog, is_secret_key, redact_text, redact_value

# Unreserved URL characters and more; prefixed so a secret cannot occur by chance elsewhere.
secrets_ = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0123456789._~-%+/=:,",
                   min_size=4, max_size=24).map(lambda s: "Zx" + s)
secret_keys = st.sampled_from(["unlock", "unlock_code", "UNLOCK", "password", "token", "api_key",
                               "rapid_unlock", "secret"])

URL_FORMS = [
    "magstim-rapid2:///dev/ttyUSB0?{key}={secret}",
    "magstim-rapid2:///dev/ttyUSB0?baud=9600&{key}={secret}&timeout=1",
    "magstim-rapid2+socket://127.0.0.1:7777?{key}={secret}#frag",
    "magventure+socket://tech:{secret}@10.0.0.5:5000",
]
TEXT_FORMS = [
    "connect failed for {url}",
    "options: {key}={secret}; baud=9600",
    "bad options {{'{key}': '{secret}', 'baud': 9600}}",
    '{{"{key}": "{secret}"}}',
    "{key}: {secret}",
]


def _clean(value: str, secret: str) -> bool:
    return secret not in value


@given(secret=secrets_, key=secret_keys, form=st.sampled_from(URL_FORMS))
def test_urls_lose_their_secrets_and_keep_everything_else(secret: str, key: str, form: str) -> None:
    url = form.format(key=key, secret=secret)
    redacted = redact_text(url)
    assert _clean(redacted, secret)
    assert REDACTED in redacted
    assert redacted.split("?")[0].split("://")[0] == url.split("?")[0].split("://")[0]
    if "baud=9600" in url:
        assert "baud=9600" in redacted and "timeout=1" in redacted


@given(secret=secrets_.filter(lambda s: "'" not in s and '"' not in s), key=secret_keys,
       form=st.sampled_from(TEXT_FORMS), url_form=st.sampled_from(URL_FORMS))
def test_free_text_loses_its_secrets(secret: str, key: str, form: str, url_form: str) -> None:
    text = form.format(key=key, secret=secret, url=url_form.format(key=key, secret=secret))
    assert _clean(redact_text(text), secret)


def test_text_without_secrets_is_unchanged() -> None:
    for text in (
        "sim://rapid2?seed=7&fault=coil_overtemp@30s",
        "magstim-rapid2+socket://127.0.0.1:7777?fault=coil_overtemp@30s",
        "token refreshed",
        "S017 itbs-600 55 %MSO",
    ):
        assert redact_text(text) == text


@given(secret=secrets_, key=secret_keys)
def test_nested_values_are_redacted_by_key_and_by_content(secret: str, key: str) -> None:
    value = {"device": {"options": {key: secret}, "urls": [f"sim://x?{key}={secret}"]}, "n": 3}
    redacted = redact_value(value)
    assert secret not in repr(redacted)
    assert redacted["n"] == 3
    assert is_secret_key(key)


def _all_bytes(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(directory.rglob("*")) if path.is_file())


@pytest.mark.parametrize("secret", ["ZxUNLOCK0451", "Zx1234%2C5678", "Zx s p a c e"])
def test_secrets_never_reach_the_database_or_the_audit_log(secret: str, tmp_path: Path) -> None:
    clock = VirtualClock(autojump=False)
    password, unlock = secret.replace(" ", ""), secret.replace(" ", "%20")
    url = f"magstim-rapid2+socket://tech:{password}@127.0.0.1:7777?unlock={unlock}"
    with Records(tmp_path / "db" / "t.db", clock=clock) as store:
        store.ensure_subject("S017")
        session = store.create_session(session_plan(device_url=url))
        sid = session.session_id
        assert _clean(session.device_url, secret.replace(" ", "")) and _clean(session.device_url, secret)
        store.record_override(Override(sid, "W4", f"connect via {url}", "tech1", f"password={secret!r}",
                                       PROTOCOL_HASH, "rulebook-1"))
        store.start_session(sid, operator="tech1")
        store.record_action(OperatorAction(sid, ActionKind.CONFIRM, "tech1", f"token: '{secret}'"))
        store.begin_delivery(train_plan(sid, 0))
        store.finish_delivery(DeliveryResult(sid, 0, 10, True))
        store.record_fault(Fault(sid, "connect_failed", f"could not open {url}", "connecting"))
        store.fault_session(Fault(sid, "keepalive_missed", f"options {{'unlock_code': '{secret}'}}", "armed"))
        with SessionAuditLog.open(tmp_path / "logs" / f"{sid}.jsonl", session_id=sid, simulated=True,
                                  clock=clock) as log:
            log.logger.info("connected", url=url, unlock=secret, options={"unlock_code": secret})
            log.logger.warning(f"retrying {url}")
            try:
                raise ConnectionError(f"refused: password={secret}")
            except ConnectionError:
                log.logger.exception("fault")
        # While open, the WAL holds the newest pages: check it as well as the main file.
        for data in (_all_bytes(tmp_path / "db"), _all_bytes(tmp_path / "logs")):
            assert data  # there is something to check
            for form in {secret, secret.replace(" ", ""), secret.replace(" ", "%20")}:
                assert form.encode() not in data
    assert secret.encode() not in _all_bytes(tmp_path)


def test_the_secret_scan_would_notice_a_leak(tmp_path: Path) -> None:
    # The scan above is only worth something if a secret stored in clear would be found.
    with (
        tempfile.TemporaryDirectory(dir=tmp_path) as directory,
        Records(Path(directory) / "t.db", clock=VirtualClock(autojump=False)) as store,
    ):
        store.ensure_subject("S017")
        store.create_session(session_plan(protocol_text="note: ZxLEAKED"))
        assert b"ZxLEAKED" in _all_bytes(Path(directory))
