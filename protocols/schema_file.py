"""The published JSON Schema of the protocol format (``protocols/schema/protocol.schema.json``).

It is generated from the pydantic models and checked in so editors can validate files
(``# yaml-language-server: $schema=...``); a test fails when it is out of step. Regenerate with::

    python -m tmsctl.protocols.schema_file --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tmsctl.protocols.models import SCHEMA_VERSION, Protocol

SCHEMA_ID = f"urn:tmsctl:schema:protocol:{SCHEMA_VERSION}"
REGENERATE = "python -m tmsctl.protocols.schema_file --write"


def schema_path() -> Path:
    return Path(__file__).resolve().parent / "schema" / "protocol.schema.json"


def generate_schema() -> dict[str, Any]:
    schema = Protocol.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def render_schema() -> str:
    return json.dumps(generate_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments == ["--write"]:
        schema_path().parent.mkdir(parents=True, exist_ok=True)
        schema_path().write_text(render_schema(), encoding="utf-8")
        print(f"wrote {schema_path()}")
        return 0
    if not arguments:
        sys.stdout.write(render_schema())
        return 0
    print("usage: python -m tmsctl.protocols.schema_file [--write]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
