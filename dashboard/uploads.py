"""Checks of an uploaded IFC file: size, encoding, the site id it is loaded as."""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

MAX_UPLOAD_BYTES = 100 * 1024 * 1024
SITE_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class UploadError(ValueError):
    """An upload that cannot be imported (too large, not base64, bad site id)."""


def decode_upload(contents: str, max_bytes: int = MAX_UPLOAD_BYTES) -> bytes:
    """The bytes of a ``dcc.Upload`` data URL (``data:...;base64,...``), refusing more than ``max_bytes``."""
    _, _, encoded = contents.partition(",")
    if len(encoded) * 3 // 4 > max_bytes + 3:
        raise UploadError(f"file too large (more than {max_bytes // (1024 * 1024)} MB)")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UploadError("the upload is not a file") from exc


def site_id_for(given: str | None, filename: str) -> str:
    """The site id typed, else one made from the file name; must fit MQTT topics."""
    site_id = (given or "").strip() or re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(filename).stem).strip("-")[:64]
    if not SITE_ID.fullmatch(site_id):
        raise UploadError(f"site id {site_id!r}: letters, digits, '_', '.', '-' only")
    return site_id
