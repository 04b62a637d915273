"""ifcZIP: an IFC-SPF file in a ZIP archive, as many authoring tools export by default.

::

    with ifc_spf(Path("school.ifczip")) as path:   # the one member, extracted to a temporary file
        ifc_file = ifcopenshell.open(str(path))
    # the temporary file is gone here; a plain .ifc is passed through as it is

The archive is recognised by its content (``PK``), whatever its name. It must hold exactly one
file. A ZIP bomb is refused: the archive, its member's uncompressed size and its expansion
ratio are limited (:class:`ArchiveLimits`), first by what the archive says, then while the
member is streamed to disk, by what it really yields: a member whose header lies is stopped at
the limit (and :mod:`zipfile` itself stops at the size the header states, then finds the
CRC wrong). Nothing outside the temporary folder is written.

ifcXML is refused with a clear message: IfcOpenShell 0.9 cannot read it
(``ifcopenshell.open`` raises ``NotImplementedError``), so the planner is asked for IFC-SPF.
"""

from __future__ import annotations

import re
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from models_bim.errors import IfcReadError
from twin.ifc_header import NotIfcSpf, zip_member

#: ZIP local file header, and the end record of an empty archive.
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
#: Bytes copied at a time while extracting.
COPY_BYTES = 2**20
#: A member up to this size is never a bomb, whatever its ratio (a small, repetitive file).
RATIO_FREE_BYTES = 2**20


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """What an ifcZIP may be: the archive's size, its member's uncompressed size and expansion ratio.

    Real IFC files compress 2.6 to 6.4 times (the files of ../shared/ifc and the generated campus);
    200 MB of zeros compress about 1,000 times.
    """

    max_archive_bytes: int = 512 * 2**20
    max_extracted_bytes: int = 2 * 2**30
    max_ratio: float = 100.0


def _mb(size: float) -> str:
    return f"{size / 2**20:.2f}".rstrip("0").rstrip(".")


def is_zip(path: Path) -> bool:
    """Whether the file at ``path`` is a ZIP archive (by its first bytes); False when it cannot be read."""
    try:
        with Path(path).open("rb") as fh:
            return fh.read(4) in ZIP_MAGIC
    except OSError:
        return False


@contextmanager
def ifc_spf(path: Path, limits: ArchiveLimits | None = None) -> Iterator[Path]:
    """The IFC-SPF file to read for ``path``: itself, or the single member of an ifcZIP extracted to a
    temporary file that is removed when the block ends. Raises :class:`IfcReadError` for an archive
    that is not one IFC file within ``limits``."""
    path = Path(path)
    if not is_zip(path):
        yield path
        return
    limits = limits or ArchiveLimits()
    size = path.stat().st_size
    if size > limits.max_archive_bytes:
        raise IfcReadError(f"ifcZIP refused: the archive is larger than {_mb(limits.max_archive_bytes)} MB")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise IfcReadError(f"ifcZIP refused: not a readable ZIP archive ({exc})") from None
    with archive, tempfile.TemporaryDirectory(prefix="campus-ifczip-") as folder:
        member = _one_member(archive, limits)
        target = Path(folder) / (re.sub(r"[^\w.-]+", "_", Path(member.filename).name).strip("._") or "model.ifc")
        _extract(archive, member, target, budget=min(limits.max_extracted_bytes,
                                                     max(limits.max_ratio * size, RATIO_FREE_BYTES)), limits=limits)
        yield target


def _one_member(archive: zipfile.ZipFile, limits: ArchiveLimits) -> zipfile.ZipInfo:
    """The archive's only file, if what its directory says is within ``limits``."""
    try:
        member = zip_member(archive)
    except NotIfcSpf as exc:
        raise IfcReadError(str(exc)) from None
    if member.file_size > limits.max_extracted_bytes:
        raise IfcReadError(f"ifcZIP refused: {member.filename} is larger than {_mb(limits.max_extracted_bytes)} MB "
                           f"uncompressed")
    if member.file_size > max(limits.max_ratio * member.compress_size, RATIO_FREE_BYTES):
        raise _bomb(member, limits)
    return member


def _bomb(member: zipfile.ZipInfo, limits: ArchiveLimits) -> IfcReadError:
    return IfcReadError(f"ifcZIP refused: {member.filename} expands to more than {limits.max_ratio:g} times its "
                        f"compressed size (a ZIP bomb?)")


def _extract(archive: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, *, budget: float,
             limits: ArchiveLimits) -> None:
    """Stream ``member`` to ``target``, stopping as soon as it yields more than ``budget`` bytes."""
    written = 0
    try:
        with archive.open(member) as source, target.open("wb") as out:
            while chunk := source.read(COPY_BYTES):
                written += len(chunk)
                if written > limits.max_extracted_bytes:
                    raise IfcReadError(f"ifcZIP refused: {member.filename} is larger than "
                                       f"{_mb(limits.max_extracted_bytes)} MB uncompressed")
                if written > budget:
                    raise _bomb(member, limits)
                out.write(chunk)
    except IfcReadError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
        raise IfcReadError(f"ifcZIP refused: {member.filename} is corrupt ({exc})") from None
