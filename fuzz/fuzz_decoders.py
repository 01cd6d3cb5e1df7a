"""Coverage-guided fuzzing (atheris) of every wire decoder and of the protocol loader.

The hypothesis property tests in tests/ run on every CI build; this harness is for longer,
coverage-guided runs:  pip install -e '.[fuzz]'  then

    python fuzz/fuzz_decoders.py -atheris_runs=200000          # all targets, round robin
    python fuzz/fuzz_decoders.py -max_total_time=600

Any exception other than our typed errors (ProtocolError, DeviceRefused, ProtocolFileError,
InvalidArgument) is a crash and stops the run with the input that caused it.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from tmsctl.core.errors import DeviceRefused, InvalidArgument, ProtocolError, ProtocolFileError
    from tmsctl.drivers.deymed import codec as deymed
    from tmsctl.drivers.magstim import codec as magstim
    from tmsctl.drivers.magventure import codec as magventure
    from tmsctl.protocols.loader import load_protocol_text

EXPECTED = (ProtocolError, DeviceRefused, ProtocolFileError, InvalidArgument)
MAGSTIM_COMMANDS = sorted(magstim.COMMANDS_BY_MODEL[magstim.Model.RAPID2] | magstim.COMMANDS_BY_MODEL[magstim.Model.BISTIM])
VERSIONS = [None, (6, 0), (7, 2), (8, 1), (9, 0), (10, 2, 1)]


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    target = fdp.ConsumeIntInRange(0, 4)
    try:
        if target == 0:
            command = MAGSTIM_COMMANDS[fdp.ConsumeIntInRange(0, len(MAGSTIM_COMMANDS) - 1)]
            version = VERSIONS[fdp.ConsumeIntInRange(0, len(VERSIONS) - 1)]
            magstim.decode_reply(command, fdp.ConsumeBytes(64), version)
        elif target == 1:
            magstim.parse_host_frame(fdp.ConsumeBytes(64), magstim.Model.RAPID2, (9, 0))
        elif target == 2:
            parser = magventure.MagProFrameParser()
            parser.feed(fdp.ConsumeBytes(256))
            parser.drain_rejects()
        elif target == 3:
            parser = deymed.DuoMagStatusParser()
            parser.feed(fdp.ConsumeBytes(256))
        else:
            load_protocol_text(fdp.ConsumeUnicodeNoSurrogates(4096))
    except EXPECTED:
        pass


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
