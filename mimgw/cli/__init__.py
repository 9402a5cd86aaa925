"""The ``mimgw`` command line: send, bulk-send, balances, statuses, the simulator and a demo.

Needs the ``cli`` extra: ``pip install "mimgw[cli]"``. Exit codes: 0 success, 1 a
failure (one line naming the error kind, or a JSON object with ``--json``), 2 wrong
usage, 130 interrupted. Importing this package imports neither rich nor uvicorn:
:func:`main` does, and says which extra to install when they are missing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["CLI_EXTRA_HINT", "main"]

CLI_EXTRA_HINT = 'mimgw: the command line needs the "cli" extra: pip install "mimgw[cli]"'


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    try:
        from mimgw.cli._app import run
    except ImportError as exc:
        if (exc.name or "").split(".")[0] != "rich":
            raise
        sys.stderr.write(CLI_EXTRA_HINT + "\n")
        return 1
    return run(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
