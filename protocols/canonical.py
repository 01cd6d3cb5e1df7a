"""The canonical form of a protocol and its content hash, used to approve and pin protocols.

The hash covers the validated content, not the file's bytes: comments, key order, quoting and
spacing do not change it; every value that changes what is delivered does (defaults included, so
a file that relies on a default and one that spells it out hash alike).
"""

from __future__ import annotations

import hashlib
import json

from tmsctl.protocols.models import Protocol

HASH_DOMAIN = b"tmsctl.protocol.v1\n"


# Fields added after protocols were first approved: left out while unset, so adding the field did
# not change the hash of (and so un-approve) every protocol approved before it existed.
_LATER_OPTIONAL_FIELDS = ("status", "trigger")


def canonical_json(protocol: Protocol) -> str:
    """Sorted keys, no whitespace, UTF-8 text, every field present (later optional ones once set)."""
    data = protocol.model_dump(mode="json")
    for name in _LATER_OPTIONAL_FIELDS:
        if data.get(name) is None:
            del data[name]
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(protocol: Protocol) -> str:
    """``sha256:<hex>`` of the canonical form."""
    digest = hashlib.sha256(HASH_DOMAIN + canonical_json(protocol).encode("utf-8")).hexdigest()
    return f"sha256:{digest}"
