"""Errors raised by the BIM reader."""

from __future__ import annotations


class IfcReadError(ValueError):
    """The input is not a readable IFC model; the message is one line, fit for a CLI or a log."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split())[:300])
