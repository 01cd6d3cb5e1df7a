"""Plain option values without pydantic: a name or a whole number needs no validation library.

Typer (from 0.2x) converts every parameter's value through a pydantic ``TypeAdapter``. Importing
pydantic and building the adapters costs `tmsctl sessions` about a third of its time (issue 19: the
records commands ≤ 200 ms), though its options are only names, flags and whole numbers. ``install``
wraps typer's converter so that a value that is already what its annotation asks for (a ``str``
for ``str``, an ``int`` or a plain decimal whole number for ``int``, a ``bool`` for ``bool``; each
also under ``| None``) is taken as pydantic would take it, without pydantic. Every other value, and
every parameter with a parser, range, choice, path or file rule, still goes through typer's own
converter, built on first use — so its results and its error messages stay typer's.
tests/cli/test_plain_values.py compares the two on the values taken here.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable
from typing import Any, Union, get_args, get_origin

_NOT_PLAIN = object()
# A whole number as pydantic reads it for certain: no sign but minus, no leading zero, no
# separators, no spaces, short of any digit limit.
_WHOLE_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")


def plain_value(annotation: Any, value: Any) -> Any:
    """``value`` as pydantic would convert it to ``annotation``, or ``_NOT_PLAIN`` where this
    function does not know for certain."""
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) != 1:
            return _NOT_PLAIN
        annotation = members[0]
    if annotation is str and type(value) is str:
        return value
    if annotation is bool and type(value) is bool:
        return value
    if annotation is int:
        if type(value) is int:
            return value
        if type(value) is str and _WHOLE_NUMBER.fullmatch(value):
            return int(value)
    return _NOT_PLAIN


def install() -> bool:
    """Wrap typer's value converter (False where this typer has none: it then needs no wrapping)."""
    try:
        from typer import core
        from typer._coercion import RuntimeParam, TypeDescriptor
    except ImportError:
        return False
    found = getattr(core, "build_runtime_param", None)
    if found is None or getattr(found, "_tmsctl_plain_values", False):
        return found is not None
    original: Callable[[TypeDescriptor], RuntimeParam] = found

    class PlainFirst(RuntimeParam):
        """Plain values here; anything else through typer's converter, built when first needed."""

        _descriptor: TypeDescriptor
        _typers: RuntimeParam | None

        def __init__(self, descriptor: TypeDescriptor) -> None:
            super().__init__(parameter_info=descriptor.parameter_info, annotation=descriptor.annotation)
            object.__setattr__(self, "_descriptor", descriptor)
            object.__setattr__(self, "_typers", None)

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            plain = plain_value(self.annotation, value)
            if plain is not _NOT_PLAIN:
                return plain
            typers = self._typers
            if typers is None:
                typers = original(self._descriptor)
                object.__setattr__(self, "_typers", typers)
            return typers._coerce_value(value, param=param, ctx=ctx)

    def build_runtime_param(descriptor: TypeDescriptor) -> RuntimeParam:
        info = descriptor.parameter_info
        if (descriptor.is_file or descriptor.is_list or descriptor.is_tuple or descriptor.is_ranged
                or descriptor.is_choice or descriptor.is_path or getattr(info, "parser", None) is not None):
            return original(descriptor)
        return PlainFirst(descriptor)

    build_runtime_param._tmsctl_plain_values = True  # type: ignore[attr-defined]
    core.build_runtime_param = build_runtime_param
    return True
