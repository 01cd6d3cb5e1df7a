"""Which values are secrets, and how text and data are redacted before anyone stores or shows them.

One rule for the audit log (``tmsctl.session.audit.redact_processor``), the records (device URLs and
free-text reasons) and the CLI: values under secret-looking keys (``unlock``, ``password``,
``token`` ...) and URL passwords become ``"REDACTED"``; a reference to a secret (``env:NAME``) says
where it is, not what it is, and is kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "REDACTED"

# Keys whose values are secrets wherever they appear (event keys, URL query options).
SECRET_KEYS: frozenset[str] = frozenset(
    {
        "unlock",
        "unlock_code",
        "unlockcode",
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "access_token",
        "authorization",
        "credentials",
    }
)
_SECRET_SUFFIXES = ("_password", "_secret", "_token", "_unlock", "_unlock_code", "_api_key")

_SECRET_NAME = (
    r"(?:[A-Za-z0-9_]*_)?(?:unlock_code|unlockcode|unlock|password|passwd|pwd|secret|token|"
    r"api_key|apikey|access_token|authorization|credentials)"
)
# A URL query option: the value runs to the next '&', '#' or whitespace (commas included).
_SECRET_QUERY = re.compile(rf"(?i)([?&;]{_SECRET_NAME}=)([^&#\s]*)")
# A reference to a secret (``unlock=env:RAPID_UNLOCK``) names a variable, not its value: it is kept.
_SECRET_REFERENCE = re.compile(r"env:[A-Za-z_][A-Za-z0-9_]*")
# key=value or key: value in any other text (option lists, messages, a dict's repr). The value
# runs to its closing quote when quoted, else to the next separator.
_SECRET_PAIR = re.compile(
    rf"(?i)(?<![A-Za-z0-9])({_SECRET_NAME})(['\"]?\s*[=:]\s*)"
    r"(\"[^\"]*\"?|'[^']*'?|[^&;,\s#'\"}\]]+)"
)

# scheme://user:password@host (a careless password may hold '/', so only '?', '#', '@' end it)
_URL_PASSWORD = re.compile(r"(?i)([a-z][a-z0-9+.\-]*://[^/\s:@?#]*:)([^@\s?#]+)(@)")


def _redact_pair(match: re.Match[str]) -> str:
    value = match.group(3)
    if _SECRET_REFERENCE.fullmatch(value):
        return match.group(0)  # env:NAME says where the secret is, not what it is
    quote = value[0] if value[0] in "'\"" else ""
    return match.group(1) + match.group(2) + quote + REDACTED + quote



def is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return lowered in SECRET_KEYS or lowered.endswith(_SECRET_SUFFIXES)


def redact_text(text: str) -> str:
    """``text`` with secret ``key=value`` values and URL passwords replaced by ``REDACTED``."""
    text = _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + m.group(3), text)
    text = _SECRET_QUERY.sub(lambda m: m.group(0) if _SECRET_REFERENCE.fullmatch(m.group(2)) else m.group(1) + REDACTED, text)
    return _SECRET_PAIR.sub(_redact_pair, text)


def redact_value(value: Any) -> Any:
    """A copy of ``value`` (JSON-like data) with secrets redacted at every depth."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_key(k) else redact_value(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v) for v in value]
    return value


