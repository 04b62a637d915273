"""Checks of an uploaded IFC file, and its import in a child process with time and memory limits.

A hostile file (huge, junk, deeply nested, crafted to exhaust memory or time) must not take the
dashboard down: it is refused by size (:func:`decode_upload`) or type (:func:`check_ifc`), else
parsed and imported by the injected loader in a *spawned* process (:func:`run_isolated`, through
:func:`twin.children.spawn`) whose address space is capped (``RLIMIT_AS``) and which is killed at the
wall-time limit. The dashboard's own process never parses the file.
"""

from __future__ import annotations

import base64
import binascii
import io
import threading
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twin import children
from twin.domain import NOT_IN_SITE_ID, SITE_ID
from twin.ifc_header import HEADER_BYTES, NotIfcSpf, spf_schema, zip_member

MAX_UPLOAD_BYTES = 100 * 1024 * 1024
#: What the file chooser offers: IFC-SPF and ifcZIP (a ZIP holding one IFC-SPF file).
ACCEPTED_SUFFIXES = ".ifc,.ifczip,.zip"
#: ZIP local file header, and the end record of an empty archive.
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


class UploadError(ValueError):
    """An upload that cannot be imported (too large, not IFC, bad site id, over a limit)."""


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """Limits of one upload: size, wall time of the import, address space of the import process."""

    max_bytes: int = MAX_UPLOAD_BYTES
    timeout_s: float = 300.0
    memory_bytes: int = 4 * 1024**3


def decode_upload(contents: str, max_bytes: int = MAX_UPLOAD_BYTES) -> bytes:
    """The bytes of a ``dcc.Upload`` data URL (``data:...;base64,...``), refusing more than ``max_bytes``."""
    _, _, encoded = contents.partition(",")
    if len(encoded) * 3 // 4 > max_bytes + 3:
        raise UploadError(f"file too large (more than {max_bytes // (1024 * 1024)} MB)")
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UploadError("the upload is not a file") from exc
    if len(blob) > max_bytes:
        raise UploadError(f"file too large (more than {max_bytes // (1024 * 1024)} MB)")
    return blob


def check_ifc(blob: bytes) -> str:
    """The IFC schema named in the header (``IFC4``); UploadError when it is neither an IFC-SPF file nor an
    ifcZIP holding one.

    Of an ifcZIP only the directory and the first :data:`HEADER_BYTES` of its member are read here; its
    sizes and expansion ratio are checked by the loader, in the import process, while it extracts
    the member (``models_bim.archive``, the same limits as ``campus-twin bim load``).
    """
    head = _zip_head(blob) if blob[:4] in ZIP_MAGIC else blob[:HEADER_BYTES]
    try:
        return spf_schema(head)
    except NotIfcSpf as exc:
        raise UploadError(str(exc)) from None


def _zip_head(blob: bytes) -> bytes:
    """The first bytes of the one file in the ZIP archive ``blob``."""
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            try:
                info = zip_member(archive)
            except NotIfcSpf as exc:
                raise UploadError(str(exc)) from None
            with archive.open(info) as member:
                return member.read(HEADER_BYTES)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as exc:
        raise UploadError(f"ifcZIP refused: not a readable ZIP archive ({exc})") from None


def site_id_for(given: str | None, filename: str) -> str:
    """The site id typed, else one made from the file name; must fit MQTT topics."""
    site_id = (given or "").strip() or NOT_IN_SITE_ID.sub("-", Path(filename).stem).strip("-")[:64]
    if not SITE_ID.fullmatch(site_id):
        raise UploadError(f"site id {site_id!r}: letters, digits, '_', '.', '-' only")
    return site_id


def run_isolated(loader: Callable[..., dict[str, Any]], path: Path, site_id: str, *, name: str | None, role: str,
                 limits: UploadLimits) -> dict[str, Any]:
    """``loader(path, site_id, name=, role=)`` in a spawned process within ``limits``; its summary.

    The loader must be picklable (a module-level function or a ``functools.partial`` of one).
    Raises :class:`UploadError` on timeout (the process is killed), on a crash or memory
    exhaustion, with the first line of the loader's own error, and while another import runs.
    """
    if not _IMPORTING.acquire(blocking=False):
        raise UploadError("another IFC import is running: try again when it has finished")
    try:
        return _run_isolated(loader, path, site_id, name=name, role=role, limits=limits)
    finally:
        _IMPORTING.release()


#: One IFC import at a time per dashboard process: each may take minutes and gigabytes.
_IMPORTING = threading.BoundedSemaphore(1)


def _run_isolated(loader: Callable[..., dict[str, Any]], path: Path, site_id: str, *, name: str | None, role: str,
                  limits: UploadLimits) -> dict[str, Any]:
    child = children.spawn(loader, path, site_id, name=name, role=role, memory_bytes=limits.memory_bytes,
                           process_name="campus-bim-import")
    try:
        return child.result(limits.timeout_s)  # type: ignore[no-any-return]
    except children.ChildTimeout:
        raise UploadError(f"the import took longer than {limits.timeout_s:g} s and was stopped") from None
    except children.ChildDied as exc:
        raise UploadError(f"the import process died ({exc}): the file was refused") from None
    except children.ChildFailed as exc:
        if exc.kind == "memory":
            raise UploadError("the import ran out of memory (limit reached)") from None
        if exc.kind == "unsent":
            raise UploadError(f"the import result could not be returned: {exc}") from None
        raise UploadError(str(exc)) from None
