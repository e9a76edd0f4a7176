"""``python -m dipscope.cli``."""

from . import main

main()
