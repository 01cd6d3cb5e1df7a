"""BIDS tab-separated tables: ``n/a`` for what nobody recorded, numbers without float noise."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

NA = "n/a"


def fmt(value: Any) -> str:
    if value is None:
        return NA
    if isinstance(value, float):
        if not math.isfinite(value):
            return NA
        text = f"{value:.6f}".rstrip("0").rstrip(".")
        return text if text not in ("", "-0") else "0"
    return str(value)


def write_tsv(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([fmt(row.get(c)) for c in columns])
    return out.getvalue()


def read_tsv(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.reader(io.StringIO(text), delimiter="\t")
    rows = list(reader)
    header = rows[0]
    return header, [dict(zip(header, r)) for r in rows[1:]]
