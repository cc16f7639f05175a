"""``python -m soundnet_cli``."""

from soundnet_cli.cli import main

main()
