"""The ``tmsctl`` command (the console script) and ``python -m tmsctl``.

Exactly ``tmsctl --help`` is answered from the table in tmsctl.cli.fast_help, without importing
typer, rich or any command's module (a person waits a few times less); everything else, and that
too where the table cannot draw typer's screen exactly, goes to tmsctl.cli.main.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--help"]:
        from tmsctl.cli.fast_help import print_help

        if print_help():
            return
    from tmsctl.cli.main import main as run_command

    run_command()


if __name__ == "__main__":
    main()
