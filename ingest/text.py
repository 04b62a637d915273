"""Text that devices send, checked before anything stores or echoes it: a pure function."""

from __future__ import annotations


def check_text(value: object, what: str, max_len: int) -> str | None:
    """``None`` when ``value`` is text a device may send (1 to ``max_len`` characters, no NUL or
    other control character, no lone surrogate), else the reason it is refused.

    PostgreSQL's ``text`` cannot hold NUL, and a lone surrogate is not valid UTF-8.
    """
    if not isinstance(value, str):
        return f"{what} must be text, got {type(value).__name__}"
    if not value:
        return f"{what} is empty"
    if len(value) > max_len:
        return f"{what} is {len(value)} characters long (at most {max_len})"
    if not value.isprintable():  # the usual text is printable: one C loop, then look for the culprit
        for ch in value:
            code = ord(ch)
            if code == 0:
                return f"{what} contains NUL (U+0000)"
            if code < 0x20 or 0x7F <= code <= 0x9F:
                return f"{what} contains control character U+{code:04X}"
            if 0xD800 <= code <= 0xDFFF:
                return f"{what} contains lone surrogate U+{code:04X} (not valid UTF-8)"
    return None
