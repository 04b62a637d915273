"""What an IFC-SPF file's first bytes must say: the one header check.

Both sides that take IFC files read it: ``models_bim`` before it parses a file, and the
dashboard before it spawns an import for an upload (the dashboard may import only ``twin``,
DESIGN.md, so the check lives in the core). No IfcOpenShell here: bytes in, schema name out.

>>> spf_schema(b"\\xef\\xbb\\xbfISO-10303-21;\\nHEADER;\\nFILE_SCHEMA(('IFC4'));")
'IFC4'
"""

from __future__ import annotations

import re

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
