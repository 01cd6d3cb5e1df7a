"""Device URLs: ``<driver>[+<transport>]://<transport-specific rest>[?options]``.

We parse them ourselves; pyserial only ever sees the transport part. Examples::

    magstim-rapid2:///dev/ttyUSB0              driver magstim-rapid2, port /dev/ttyUSB0
    magstim-rapid2:///dev/ttyUSB0?unlock=env:RAPID_UNLOCK
    magstim-bistim+socket://127.0.0.1:7777     pyserial gets socket://127.0.0.1:7777
    magstim-rapid2+spy:///dev/ttyUSB0?file=trace.txt
    sim://rapid2                               the in-process simulator profile "rapid2"
    magstim-rapid2+sim://rapid2?fault=coil_overtemp@30s

Options the driver takes are taken out: ``baud`` for every driver, and those its ``DriverEntry``
declares (``url_options``; the registry knows them, for a bare ``sim://NAME`` through the
simulator's driver). The rest stay on the transport URL (``spy://…?file=``, ``sim://…?fault=``).
Secret option values (the entry's ``secret_options``) are referenced (``env:NAME``) and never
printed: ``DeviceURL.redacted`` is what goes into logs and records.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from tmsctl.core.errors import DeviceUnavailable, InvalidArgument

GENERIC_URL_OPTIONS = frozenset({"baud"})  # a port setting every driver takes
SIM_SCHEME = "sim"

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9._-]*(?:\+[A-Za-z][A-Za-z0-9_-]*)?)://(?P<rest>.*)$")


@dataclass(frozen=True)
class DeviceURL:
    driver: str | None  # None for bare sim://NAME: the simulator profile names its driver
    transport: str  # what pyserial opens
    options: dict[str, str] = field(default_factory=dict)
    text: str = ""
    secret_options: frozenset[str] = frozenset()  # masked by ``redacted``

    @property
    def is_simulator(self) -> bool:
        return self.transport.startswith(f"{SIM_SCHEME}://")

    @property
    def simulator_profile(self) -> str | None:
        if not self.is_simulator:
            return None
        return self.transport[len(SIM_SCHEME) + 3 :].split("?", 1)[0].strip("/")

    @property
    def redacted(self) -> str:
        """The URL with secret option values replaced, safe to log and record."""
        # An ``env:NAME`` reference names where the secret is, not the secret: it is kept, so a
        # recorded URL opens the device again (``tmsctl resume``) where the variable is set.
        opts = {
            k: ("***" if k in self.secret_options and not is_secret_reference(v) else v) for k, v in self.options.items()
        }
        suffix = f"?{urlencode(opts, safe=':/')}" if opts else ""
        head = self.text.split("?", 1)[0]
        tq = self.transport.split("?", 1)
        transport_query = f"?{tq[1]}" if len(tq) == 2 else ""
        if transport_query and suffix:
            return f"{head}{transport_query}&{suffix[1:]}"
        return f"{head}{transport_query or suffix}"

    def secret(self, name: str) -> bytes | None:
        """Resolve a secret option: ``env:NAME`` reads the environment; literals are refused."""
        value = self.options.get(name)
        if value is None:
            return None
        if not value.startswith("env:"):
            raise InvalidArgument(
                f"option {name!r} must reference a secret, not contain it",
                hint=f"put the value in an environment variable and write {name}=env:VARIABLE",
            )
        var = value[4:]
        if var not in os.environ:
            raise InvalidArgument(f"environment variable {var!r} (for option {name!r}) is not set")
        return os.environb[var.encode()] if hasattr(os, "environb") else os.environ[var].encode("latin-1")


_SECRET_REFERENCE = re.compile(r"env:[A-Za-z_][A-Za-z0-9_]*")


def is_secret_reference(value: str) -> bool:
    """``env:NAME``: where a secret option's value is read from (the only form a URL may carry)."""
    return _SECRET_REFERENCE.fullmatch(value) is not None


def parse(text: str) -> DeviceURL:
    """Parse a device URL. Unknown shapes raise DeviceUnavailable with an example."""
    m = _URL.match(text.strip())
    if not m:
        raise DeviceUnavailable(
            f"not a device URL: {text!r}",
            hint="write it like magstim-rapid2:///dev/ttyUSB0 or sim://rapid2",
        )
    scheme, rest = m.group("scheme").lower(), m.group("rest")
    driver, _, transport_scheme = scheme.partition("+")
    path, _, query = rest.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    bare_simulator = driver == SIM_SCHEME and not transport_scheme
    # The registry knows each driver's options; imported here because it builds on this module.
    from tmsctl.core.registry import url_options

    taken, secret = url_options(None if bare_simulator else driver, path.strip("/") if bare_simulator else None)
    driver_opts = {k: v for k, v in pairs if k in taken}
    transport_pairs = [(k, v) for k, v in pairs if k not in taken]
    transport_query = f"?{urlencode(transport_pairs, safe=':/@,')}" if transport_pairs else ""

    if bare_simulator:
        return DeviceURL(None, f"{SIM_SCHEME}://{path}{transport_query}", driver_opts, text, secret)
    if transport_scheme:
        transport = f"{transport_scheme}://{path}{transport_query}"
    else:
        if not path:
            raise DeviceUnavailable(f"{text!r} names no port", hint="e.g. magstim-rapid2:///dev/ttyUSB0")
        if transport_pairs:  # a plain port takes no options: do not let pyserial read them as its name
            unknown = ", ".join(sorted({k for k, _ in transport_pairs}))
            raise InvalidArgument(
                f"driver {driver!r} takes no option {unknown}",
                hint=f"it takes: {', '.join(sorted(taken))}",
            )
        transport = path
    return DeviceURL(driver, transport, driver_opts, text, secret)
