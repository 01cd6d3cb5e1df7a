"""Reading protocol files: YAML 1.2 text → a validated ``Protocol``, or a located error.

Safety of the reader itself:

* files above ``MAX_FILE_BYTES`` are refused before parsing, and so are values longer than any
  field allows and nesting deeper than ``MAX_NESTING``;
* ruamel.yaml's round-trip loader only builds mappings, sequences and plain scalars — it executes
  nothing — and any explicit tag (``!!python/...``, ``!foo``), anchor or alias is refused, so
  neither object construction nor alias expansion ("billion laughs") can happen;
* duplicate keys, several documents, a ``%YAML 1.1`` directive and a root that is not a mapping are
  refused (YAML 1.2: ``yes``/``no``/``on`` are strings, not booleans).

Every failure is a ``tmsctl.core.errors.ProtocolFileError`` carrying the path, the 1-based line and the
dotted field (``pattern.frequency_hz``) where known, and a hint; validation failures raise
``ProtocolValidationError`` listing every problem. Nothing else escapes.
"""

from __future__ import annotations

import difflib
import math
import os
import types
import typing
import warnings
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
)
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.reader import ReaderError

from tmsctl.core.errors import ProtocolFileError, ProtocolFileNotFound
from tmsctl.protocols.models import SCHEMA_VERSION, Protocol

MAX_FILE_BYTES = 64 * 1024
MAX_NESTING = 12
MAX_SCALAR_CHARS = 4000

Path_ = tuple[str | int, ...]

# Earlier file formats are upgraded here, one version step at a time (none exist yet).
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


class ProtocolValidationError(ProtocolFileError):
    """The file parsed but does not describe a valid protocol. ``problems`` lists each one."""

    def __init__(self, problems: list[tuple[str, int, str, str]], *, path: str) -> None:
        message, line, field, hint = problems[0]
        more = len(problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        super().__init__(message + suffix, path=path, line=line, field=field or None, hint=hint)
        self.problems = tuple(
            ProtocolFileError(text, path=path, line=where, field=name or None, hint=advice)
            for text, where, name, advice in problems
        )


def load_protocol(path: str | os.PathLike[str]) -> Protocol:
    """Read and validate the protocol file at ``path``."""
    label = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ProtocolFileNotFound("no such file", path=label, hint="check the path") from None
    except IsADirectoryError:
        raise ProtocolFileError("this is a folder, not a protocol file", path=label) from None
    except OSError as error:
        raise ProtocolFileError(f"cannot read the file: {error.strerror or error}", path=label) from None
    return load_protocol_text(data, path=label)


def load_protocol_text(text: str | bytes, *, path: str = "<text>") -> Protocol:
    """Validate protocol YAML given as text (``path`` only labels errors)."""
    data, lines = read_document(text, path=path)
    data = _migrate(data, lines, path)
    try:
        return Protocol.model_validate(data)
    except ValidationError as error:
        raise ProtocolValidationError(_problems(error, data, lines), path=path) from None
    except RecursionError:  # pragma: no cover - nesting is bounded before this point
        raise ProtocolFileError("the document is nested too deeply", path=path) from None


def read_document(text: str | bytes, *, path: str = "<text>") -> tuple[dict[str, Any], dict[Path_, int]]:
    """Parse YAML into plain dicts/lists and a map from each key's path to its line."""
    if isinstance(text, bytes):
        if len(text) > MAX_FILE_BYTES:
            raise _too_big(path)
        raw = text
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            line = raw[: error.start].count(b"\n") + 1
            raise ProtocolFileError(
                "the file is not UTF-8 text", path=path, line=line, hint="save it as UTF-8"
            ) from None
    elif len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise _too_big(path)
    if not text.strip():
        raise ProtocolFileError(
            "the file is empty", path=path, hint="start from a file in the protocol library"
        )
    lines: dict[Path_, int] = {(): 1}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            # Parsed once: the screened events are built into plain values directly (as ruamel's
            # round-trip loader would build them, then _plain turn them), not parsed a second time.
            builder = _Builder(path, lines)
            loaded = builder.build(_screen(text, path))
            if builder.equal_keys:
                _yaml().load(text)  # raises ruamel's own duplicate-key error, as before
    except ProtocolFileError:
        raise
    except MarkedYAMLError as error:
        raise _syntax_error(error, path) from None
    except ReaderError as error:
        position = error.position if isinstance(error.position, int) else 0
        raise ProtocolFileError(
            f"the character {error.character!r} is not allowed in YAML text",
            path=path,
            line=text.count("\n", 0, position) + 1,
            hint="remove control characters; save the file as plain UTF-8 text",
        ) from None
    except (YAMLError, RecursionError, ValueError, Warning) as error:
        raise ProtocolFileError(f"cannot read the YAML: {_one_line(str(error))}", path=path) from None
    except Exception as error:  # the reader must never leak a traceback
        raise ProtocolFileError(f"cannot read the YAML ({type(error).__name__})", path=path) from None
    if not isinstance(loaded, dict):
        found = "a list" if isinstance(loaded, list) else f"a single value ({_short(loaded)})"
        raise ProtocolFileError(
            f"a protocol file is a mapping of keys (schema_version, id, ...), but this is {found}",
            path=path,
            line=1,
            hint="start from a file in the protocol library",
        )
    if builder.refusal is not None:
        raise builder.refusal
    return loaded, lines


def _yaml(typ: str = "rt") -> YAML:
    yaml = YAML(typ=typ, pure=True)
    yaml.version = (1, 2)
    yaml.allow_duplicate_keys = False
    return yaml


def _too_big(path: str) -> ProtocolFileError:
    return ProtocolFileError(
        f"the file is larger than {MAX_FILE_BYTES // 1024} KiB, far beyond any protocol",
        path=path,
        hint="check that this is a protocol file",
    )


class _Position:
    """Where the event walk is: one entry per open mapping or sequence."""

    def __init__(self) -> None:
        # (is_mapping, path, keys seen, expecting a key, current key or index)
        self.stack: list[list[Any]] = []

    def here(self) -> Path_:
        """The path of the node the next event starts."""
        if not self.stack:
            return ()
        is_mapping, path, _keys, expecting_key, current = self.stack[-1]
        if is_mapping and expecting_key:
            return tuple(path)  # (already a tuple: the stack's entries are untyped lists)
        return (*path, current)

    def open(self, is_mapping: bool) -> None:
        self.stack.append([is_mapping, self.here(), set(), True, 0])

    def close(self) -> None:
        self.stack.pop()
        self.node_done()

    def key(self, name: str) -> bool:
        """Record a mapping key; False when the mapping already has it."""
        entry = self.stack[-1]
        if name in entry[2]:
            return False
        entry[2].add(name)
        entry[3], entry[4] = False, name
        return True

    def expecting_key(self) -> bool:
        return bool(self.stack) and self.stack[-1][0] and self.stack[-1][3]

    def node_done(self) -> None:
        if not self.stack:
            return
        entry = self.stack[-1]
        if entry[0]:
            entry[3] = True  # a value is complete: the next scalar is a key
        else:
            entry[4] += 1


def _screen(text: str, path: str) -> list[Any]:
    """Refuse the YAML features a protocol never needs, before anything is built; the events."""
    documents = 0
    position = _Position()
    events: list[Any] = []
    # The safe parser yields the same events as the round-trip one, without collecting comments.
    for event in _yaml("safe").parse(text):
        events.append(event)
        line = event.start_mark.line + 1 if event.start_mark is not None else None
        field = _dotted(position.here()) or None

        def refuse(
            message: str, hint: str, line: int | None = line, field: str | None = field
        ) -> ProtocolFileError:
            return ProtocolFileError(message, path=path, line=line, field=field, hint=hint)

        if isinstance(event, DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise refuse("the file holds more than one YAML document", "keep one protocol per file")
            version = getattr(event, "version", None)
            if version not in (None, (1, 2)):
                raise refuse(
                    f"protocol files are YAML 1.2, this one declares %YAML {'.'.join(map(str, version))}",
                    "remove the %YAML line",
                )
        if isinstance(event, AliasEvent) or (isinstance(event, NodeEvent) and event.anchor):
            raise refuse(
                "anchors (&name) and aliases (*name) are not used in protocol files",
                "write values out in full",
            )
        if isinstance(event, (ScalarEvent, CollectionStartEvent)) and event.tag is not None:
            raise refuse(f"YAML tags ({event.tag}) are not used in protocol files", "remove the tag")
        if isinstance(event, ScalarEvent):
            if len(event.value) > MAX_SCALAR_CHARS:
                raise refuse(
                    f"a value of {len(event.value):,} characters is longer than any field allows",
                    "check that this is a protocol file",
                )
            if position.expecting_key():
                if not position.key(event.value):
                    raise refuse(
                        f"duplicate key '{event.value}'",
                        "each key may appear only once in a mapping",
                        field=_dotted((*position.here(), event.value)),
                    )
            else:
                position.node_done()
        elif isinstance(event, CollectionStartEvent):
            if position.expecting_key():
                raise refuse(
                    "a key must be a name, not a list or mapping", "keys are words such as frequency_hz"
                )
            position.open(isinstance(event, MappingStartEvent))
            if len(position.stack) > MAX_NESTING:
                raise refuse(
                    f"the document is nested more than {MAX_NESTING} levels deep", "check the indentation"
                )
        elif isinstance(event, CollectionEndEvent):
            position.close()
    return events


def _syntax_error(error: MarkedYAMLError, path: str) -> ProtocolFileError:
    mark = error.problem_mark or error.context_mark
    line = mark.line + 1 if mark is not None else None
    problem = error.problem or error.context or "invalid YAML"
    if "duplicate key" in problem or "duplicate key" in str(error):
        key = _one_line(problem)
        return ProtocolFileError(
            f"duplicate key: {key}", path=path, line=line, hint="each key may appear only once in a mapping"
        )
    return ProtocolFileError(
        f"YAML syntax: {_one_line(problem)}",
        path=path,
        line=line,
        hint="check the indentation, and quote values that contain ': ' or start with a special character",
    )


class _Builder:
    """Screened events → plain values, each scalar resolved and constructed by ruamel's round-trip
    loader (YAML 1.2) exactly as its own composer would, and each key's and item's line noted.
    A key that is not a name is kept in ``refusal``: the document is refused for it once it is
    known to be a mapping, as before."""

    def __init__(self, path: str, lines: dict[Path_, int]) -> None:
        yaml = _yaml()
        self.resolver, self.constructor = yaml.resolver, yaml.constructor
        self.path, self.lines = path, lines
        self.refusal: ProtocolFileError | None = None
        self.equal_keys = False  # two keys that are not names but equal values (1 and 0x1) in one mapping

    def build(self, events: list[Any]) -> Any:
        root: Any = None
        # one entry per open collection: [container, its path, the pending key (mappings), the keys
        # seen there that are not names]
        stack: list[list[Any]] = []
        for event in events:
            if isinstance(event, ScalarEvent):
                value = self._scalar(event)
            elif isinstance(event, CollectionStartEvent):
                value = {} if isinstance(event, MappingStartEvent) else []
            elif isinstance(event, CollectionEndEvent):
                stack.pop()
                continue
            else:
                continue
            line = event.start_mark.line + 1
            if not stack:
                root, here = value, ()
            else:
                container, here, pending, _ = stack[-1]
                if isinstance(container, dict):
                    if pending is None:
                        if not isinstance(value, str):
                            self.equal_keys |= value in stack[-1][3]
                            stack[-1][3].add(value)
                        stack[-1][2] = self._key(value, here, line)
                        continue
                    container[pending] = value
                    stack[-1][2] = None
                    here = (*here, pending)
                else:
                    here = (*here, len(container))
                    self.lines[here] = line
                    container.append(value)
            if isinstance(event, CollectionStartEvent):
                stack.append([value, here, None, set()])
        return root

    def _key(self, key: Any, here: Path_, line: int) -> str:
        if isinstance(key, str):
            self.lines[(*here, key)] = line
            return key
        if self.refusal is None:
            self.refusal = ProtocolFileError(
                f"the key {_short(key)} is not a name",
                path=self.path,
                line=line,
                field=_dotted(here) or None,
                hint="keys are words such as frequency_hz; quote them if needed",
            )
        return f"\0{id(key)}"  # kept apart; the document is refused once built

    def _scalar(self, event: ScalarEvent) -> Any:
        tag = self.resolver.resolve(ScalarNode, event.value, event.implicit)
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
        return _plain(self.constructor.construct_object(node), (), {}, self.path)


def _plain(node: Any, here: Path_, lines: dict[Path_, int], path: str) -> Any:
    """ruamel's round-trip objects → plain Python values, recording where each key sits."""
    if isinstance(node, CommentedMap):
        result: dict[str, Any] = {}
        for key in node:
            position = node.lc.key(key)
            line = position[0] + 1 if position else lines.get(here)
            if not isinstance(key, str) or isinstance(key, bool):
                raise ProtocolFileError(
                    f"the key {_short(key)} is not a name",
                    path=path,
                    line=line,
                    field=_dotted(here) or None,
                    hint="keys are words such as frequency_hz; quote them if needed",
                )
            name = str(key)
            lines[(*here, name)] = line or 1
            result[name] = _plain(node[key], (*here, name), lines, path)
        return result
    if isinstance(node, CommentedSeq):
        items = []
        for index, item in enumerate(node):
            position = node.lc.item(index)
            lines[(*here, index)] = position[0] + 1 if position else lines.get(here, 1)
            items.append(_plain(item, (*here, index), lines, path))
        return items
    if isinstance(node, bool) or type(node).__name__ == "ScalarBoolean":
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def _migrate(data: dict[str, Any], lines: dict[Path_, int], path: str) -> dict[str, Any]:
    version = data.get("schema_version")
    if "schema_version" not in data:
        raise ProtocolFileError(
            "missing schema_version",
            path=path,
            line=1,
            field="schema_version",
            hint=f"add `schema_version: {SCHEMA_VERSION}` as the first line",
        )
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise ProtocolFileError(
            f"this file is for a newer tmsctl (schema_version {version}); this one reads up to {SCHEMA_VERSION}",
            path=path,
            line=lines.get(("schema_version",)),
            field="schema_version",
            hint="upgrade tmsctl",
        )
    while isinstance(version, int) and version in MIGRATIONS:
        data = MIGRATIONS[version](data)
        version = data.get("schema_version")
    return data


# --- pydantic errors → located problems -----------------------------------------------------


def _problems(
    error: ValidationError, data: dict[str, Any], lines: dict[Path_, int]
) -> list[tuple[str, int, str, str]]:
    problems: list[tuple[str, int, str, str, bool]] = []
    seen: set[tuple[Any, ...]] = set()
    for item in error.errors(include_url=False):
        loc: list[str | int] = list(item["loc"])
        ctx = item.get("ctx") or {}
        if item["type"] == "tmsctl_invalid" and ctx.get("field"):
            loc += [int(part) if part.isdigit() else part for part in str(ctx["field"]).split(".")]
        found, field = _locate(data, loc)
        line = _line_of(found, lines)
        message, hint = _describe(item, field)
        key = (line, field, message)
        if key in seen:
            continue
        seen.add(key)
        problems.append((message, line, field, hint, item["type"] == "extra_forbidden"))
    # An unknown key usually explains a "missing" one (a misspelling), so it leads.
    problems.sort(key=lambda problem: (not problem[4], problem[1], problem[2]))
    return [problem[:4] for problem in problems] or [("the protocol is invalid", 1, "", "")]


def _locate(data: Any, loc: list[str | int]) -> tuple[Path_, str]:
    """Walk ``loc`` through the document, skipping pydantic's union tags, to the deepest present key."""
    current = data
    found: list[str | int] = []
    named: list[str | int] = []
    for position, element in enumerate(loc):
        last = position == len(loc) - 1
        if _has(current, element):
            current = current[element]
            found.append(element)
            named.append(element)
        elif last:
            named.append(element)
        # otherwise: a union tag pydantic inserts ('rtms', 'function-after[...]'); not a key
    return tuple(found), _dotted(tuple(named))


def _has(container: Any, element: str | int) -> bool:
    if isinstance(container, dict):
        return isinstance(element, str) and element in container
    if isinstance(container, list):
        return isinstance(element, int) and 0 <= element < len(container)
    return False


def _line_of(found: Path_, lines: dict[Path_, int]) -> int:
    for length in range(len(found), -1, -1):
        line = lines.get(found[:length])
        if line is not None:
            return line
    return 1


def _dotted(parts: Path_) -> str:
    return ".".join(str(part) for part in parts)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _one_line(text: str) -> str:
    return " ".join(text.split())


_TYPE_WORDS = {
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "string_type": "text",
    "bool_type": "true or false",
    "model_type": "a mapping (key: value lines)",
    "model_attributes_type": "a mapping (key: value lines)",
    "dict_type": "a mapping (key: value lines)",
    "tuple_type": "a list",
    "list_type": "a list",
}


def _describe(item: Any, field: str) -> tuple[str, str]:
    kind = item["type"]
    ctx = item.get("ctx") or {}
    got = item.get("input")
    name = field.rsplit(".", 1)[-1] if field else ""
    if kind == "tmsctl_invalid":
        return str(ctx.get("message", item["msg"])), str(ctx.get("hint", ""))
    if kind == "missing":
        return f"missing required key '{name}'", f"add `{name}:`; `tmsctl protocol schema` lists every key"
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(name, sorted(known_field_names()), n=1, cutoff=0.6)
        hint = (
            f"did you mean '{close[0]}'?"
            if close
            else "check the spelling; `tmsctl protocol schema` lists every key"
        )
        return f"unknown key '{name}'", hint
    if kind == "union_tag_invalid":
        discriminator = str(ctx.get("discriminator", "kind")).strip("'")
        return (
            f"{discriminator} {_short(ctx.get('tag'))} is not one of {ctx.get('expected_tags')}",
            "check the spelling",
        )
    if kind == "union_tag_not_found":
        discriminator = str(ctx.get("discriminator", "kind")).strip("'")
        choices = _DISCRIMINATOR_CHOICES.get(discriminator, "")
        return (
            f"missing '{discriminator}'",
            f"add `{discriminator}:` — one of {choices}" if choices else f"add `{discriminator}:`",
        )
    if kind in _TYPE_WORDS:
        hint = ""
        if isinstance(got, str) and kind in ("int_type", "float_type"):
            hint = "write the number without quotes"
        elif isinstance(got, float) and kind in ("int_type", "int_from_float"):
            hint = "this is a count: a whole number"
        elif isinstance(got, (dict, list)) and kind == "string_type":
            hint = "quote text that contains ': ', '{' or '['"
        elif kind == "string_type":
            hint = "quote it if it should be text"
        return f"expected {_TYPE_WORDS[kind]}, found {_short(got)}", hint
    if kind in _BOUND_WORDS:
        unit = _unit_of(name)
        if unit is not None and isinstance(got, (int, float)):
            return _time_bound(name, unit, kind, ctx, got)
        return f"{_one_line(item['msg']).replace('Input should be', 'must be')}, found {_short(got)}", (
            "values are in the unit named by the key"
        )
    if kind in ("literal_error", "enum"):
        return f"{_short(got)} is not allowed: {item['msg'].replace('Input should be', 'use')}", ""
    if kind == "finite_number":
        return f"must be a finite number, found {_short(got)}", ""
    return f"{_one_line(item['msg'])} (found {_short(got)})", ""


_BOUND_WORDS = {
    "greater_than": "more than",
    "greater_than_equal": "at least",
    "less_than": "less than",
    "less_than_equal": "at most",
}
_UNIT_SUFFIXES = (("_hz", "Hz"), ("_ms", "ms"), ("_s", "s"), ("_min", "min"))
_SECONDS_PER = {"ms": 0.001, "s": 1.0, "min": 60.0}
# Onset-to-onset intervals and rates: one is the other's inverse, so both are said.
_RATE_FIELDS = {
    "frequency_hz", "burst_frequency_hz", "burst_rate_hz", "interval_ms", "interval_s", "pair_interval_s",
    "train_onset_interval_s",
}


def _unit_of(name: str) -> str | None:
    return next((unit for suffix, unit in _UNIT_SUFFIXES if name.endswith(suffix)), None)


def _quantity(value: float, unit: str) -> str:
    rounded = float(f"{value:.6g}")  # six significant digits, written out in full where that reads well
    if 1e-3 <= abs(rounded) < 1e12:
        text = f"{rounded:,.6f}".rstrip("0").rstrip(".")
    else:
        text = f"{value:.6g}"
    return f"{text} {unit}"


def _as_rate(name: str, value: float, unit: str) -> str:
    """' (250 Hz)' for an interval, ' (4 ms between pulses)' for a rate; '' where it means nothing."""
    if name not in _RATE_FIELDS or not value > 0 or not math.isfinite(value):
        return ""
    seconds = 1 / value if unit == "Hz" else value * _SECONDS_PER[unit]
    if not 0 < seconds < math.inf:
        return ""  # a value so small or large its reciprocal does not exist as a float: the bound says enough
    if unit == "Hz":
        return f" ({_quantity(seconds * 1000, 'ms')} apart)" if seconds < 1 else f" ({_quantity(seconds, 's')} apart)"
    return f" ({_quantity(1 / seconds, 'Hz')})"


def _time_bound(name: str, unit: str, kind: str, ctx: dict[str, Any], got: float) -> tuple[str, str]:
    """A time or frequency beyond the format's hard physical bound, in the unit the author used."""
    bound = float(next(iter(ctx.values())))
    message = (
        f"{name}: {_quantity(got, unit)}{_as_rate(name, got, unit)} is beyond the hard bound; it must be "
        f"{_BOUND_WORDS[kind]} {_quantity(bound, unit)}{_as_rate(name, bound, unit)}"
    )
    hint = (
        "this is a physical bound of the protocol format, the same whichever unit a field uses; it cannot be "
        f"overridden. Check the unit named by the key ({name} is in {unit})"
    )
    return message, hint


def _union_members(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _union_members(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        members: list[Any] = []
        for argument in typing.get_args(annotation):
            members += _union_members(argument)
        return members
    if origin in (tuple, list):
        members = []
        for argument in typing.get_args(annotation):
            members += _union_members(argument)
        return members
    return [annotation]


def _models(root: type[BaseModel]) -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = []
    pending = [root]
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.append(model)
        for info in model.model_fields.values():
            for member in _union_members(info.annotation):
                if isinstance(member, type) and issubclass(member, BaseModel):
                    pending.append(member)
    return seen


def known_field_names() -> set[str]:
    """Every key any part of a protocol file may use (for "did you mean" hints)."""
    return {name for model in _models(Protocol) for name in model.model_fields}


def _discriminator_choices() -> dict[str, str]:
    choices: dict[str, set[str]] = {}
    for model in _models(Protocol):
        for name in ("kind", "method"):
            info = model.model_fields.get(name)
            if info is not None:
                for value in typing.get_args(info.annotation):
                    choices.setdefault(name, set()).add(str(value))
    return {name: ", ".join(sorted(values)) for name, values in choices.items()}


_DISCRIMINATOR_CHOICES = _discriminator_choices()
