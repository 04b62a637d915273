"""``python -m twin.cli``: the ``campus-twin`` command."""

from twin.cli import main

main()
