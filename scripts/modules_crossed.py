"""How many of the package's modules one command loads (docs/layout.md, "How a command runs").

    python scripts/modules_crossed.py tag examples/
    python scripts/modules_crossed.py extract --layer conv5 examples/ --out /tmp/x

Runs ``soundnet ARGS...`` in this process and, at exit, prints on stderr the number of
``soundnet_cli`` modules imported (subpackage ``__init__``s included) and their names.
"""

from __future__ import annotations

import atexit
import sys


def _report() -> None:
    names = sorted(m for m in sys.modules if m == "soundnet_cli" or m.startswith("soundnet_cli."))
    sys.stderr.write(f"{len(names)} soundnet_cli modules loaded\n" + "\n".join(names) + "\n")


if __name__ == "__main__":
    atexit.register(_report)
    from soundnet_cli.cli import main

    sys.argv = ["soundnet", *sys.argv[1:]]
    main()
