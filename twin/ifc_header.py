"""What an IFC-SPF file's first bytes must say: the one header check.

Both sides that take IFC files read it: ``models_bim`` before it parses a file, and the
dashboard before it spawns an import for an upload (the dashboard may import only ``twin``,
DESIGN.md, so the check lives in the core). No IfcOpenShell here: bytes in, schema name out.

>>> spf_schema(b"\\xef\\xbb\\xbfISO-10303-21;\\nHEADER;\\nFILE_SCHEMA(('IFC4'));")
'IFC4'
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

#: How much of a file's start holds its HEADER section (FILE_SCHEMA) in practice.
HEADER_BYTES = 64 * 1024
IFCXML_UNSUPPORTED = "ifcXML is not supported; export IFC-SPF (.ifc) from the authoring tool"
#: ISO 10303-21 (STEP) files begin with this, after an optional byte-order mark and blanks.
_STEP_MAGIC = re.compile(rb"ISO-10303-21\s*;", re.IGNORECASE)
_FILE_SCHEMA = re.compile(rb"FILE_SCHEMA\s*\(\s*\(\s*'([^']*)'", re.IGNORECASE)
_LEADING = b"\xef\xbb\xbf \t\r\n"


class NotIfcSpf(ValueError):
    """The bytes do not start an IFC-SPF file (one line, the reason)."""


def spf_schema(head: bytes) -> str:
    """The IFC schema FILE_SCHEMA names (upper case, e.g. ``IFC4``) in ``head``, the first bytes of a
    file; :class:`NotIfcSpf` for ifcXML, anything not ISO 10303-21, or a STEP file of another schema.
    Whether this IfcOpenShell reads the schema is the reader's question (``models_bim.load``)."""
    start = head.lstrip(_LEADING)
    if start.startswith(b"<"):
        raise NotIfcSpf(IFCXML_UNSUPPORTED)
    if not _STEP_MAGIC.match(start):
        raise NotIfcSpf("not an IFC file (no ISO-10303-21 header)")
    match = _FILE_SCHEMA.search(start)
    if match is None:
        raise NotIfcSpf("truncated or corrupt IFC: no FILE_SCHEMA in the header")
    schema = match.group(1).decode("ascii", "replace").strip().upper()
    if not schema.startswith("IFC"):
        raise NotIfcSpf(f"not an IFC file (FILE_SCHEMA names {schema or '(none)'})")
    return schema


def zip_member(archive: zipfile.ZipFile) -> zipfile.ZipInfo:
    """An ifcZIP's only file, by what its directory says; :class:`NotIfcSpf` for none, several, an
    ifcXML member or an encrypted one. Size limits are the caller's (they differ before and while reading)."""
    files = [info for info in archive.infolist() if not info.is_dir()]
    if not files:
        raise NotIfcSpf("ifcZIP refused: it holds no file")
    if len(files) > 1:
        names = ", ".join(info.filename for info in files[:5]) + (", ..." if len(files) > 5 else "")
        raise NotIfcSpf(f"ifcZIP refused: it must hold one file, it holds {len(files)} ({names})")
    member = files[0]
    if Path(member.filename).suffix.lower() == ".ifcxml":
        raise NotIfcSpf(IFCXML_UNSUPPORTED)
    if member.flag_bits & 0x1:
        raise NotIfcSpf(f"ifcZIP refused: {member.filename} is encrypted")
    return member
