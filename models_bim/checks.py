"""Is this file a whole IFC model? Checks made before anything is written.

A file cut short, two exports pasted together or a file of unrelated entities must never replace
a site's twin. IfcOpenShell opens such files without complaint: it drops references to entities
that do not exist (a list loses members, an attribute becomes ``$``) and spends a long time on
duplicate ids. So the text is checked first, without IfcOpenShell::

    declared = check_entities(path)     # IfcReadError: duplicate ids, missing entities, not one IfcProject
    ifc_file = ifcopenshell.open(str(path))
    check_project(ifc_file)             # exactly one IfcProject, as IfcOpenShell read it
    check_spatial_tree(spatial_tree(ifc_file, scale))   # a site, building or storey

:func:`scan_entities` reads the file once, in blocks, with two regular expressions: entity
definitions at the start of a line (``#12=``) and every ``#n``. That is cheap (0.1 s for the 13 MB
generated campus) and exact for files written one entity per line, which is how every tool
writes them. A hash inside a string (``'Room #3'``), a definition that does not start a line
(entities packed on one line) or a comment can make it see a duplicate or a missing entity
that is not there; then, and only then, the file is scanned again with strings and comments
removed (:data:`EXACT`), and that scan decides.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ifcopenshell
import numpy as np

from models_bim.errors import IfcReadError
from models_bim.spatial import SpatialTree

#: Bytes read at a time; blocks end at a line break, so an entity's ``#n`` is never split.
BLOCK_BYTES = 2**20
# Ids of up to 18 digits (int64); a longer one is no id IfcOpenShell could read either.
_FAST_DEFINITION = re.compile(rb"\n#(\d{1,18})[ \t]*=")
_REFERENCE = re.compile(rb"#(\d{1,18})(?!\d)")
_PROJECT = re.compile(rb"=[ \t]*IFCPROJECT[ \t]*\(", re.IGNORECASE)
_EXACT_DEFINITION = re.compile(rb"#(\d{1,18})\s*=")
_DATA = re.compile(rb"(?:^|;)[ \t\r\n]*DATA[ \t\r\n]*;", re.MULTILINE)
_STRING_OR_COMMENT = re.compile(rb"'(?:[^']|'')*'|/\*.*?\*/", re.DOTALL)
#: Modes of :func:`scan_entities`.
FAST, EXACT = "fast", "exact"


@dataclass(frozen=True, slots=True)
class EntityScan:
    """What the text of an IFC-SPF file defines and references."""

    declared: int  #: entity instances defined (``#n=``), duplicates included
    duplicates: tuple[int, ...]  #: the first (smallest) ids defined more than once, at most 10
    duplicate_count: int  #: how many ids are defined more than once
    missing_references: int  #: references (``#n`` occurrences) to ids defined nowhere
    missing_example: int | None  #: the smallest such id
    projects: int  #: ``IFCPROJECT`` instances

    @property
    def suspicious(self) -> bool:
        return bool(self.duplicate_count or self.missing_references or self.projects != 1)


def _blocks(path: Path, block_bytes: int) -> Iterator[bytes]:
    """The file in blocks that start with a line break (the first with the file's start)."""
    with path.open("rb") as fh:
        rest = b"\n"
        while chunk := fh.read(block_bytes):
            buf = rest + chunk
            cut = buf.rfind(b"\n")
            if cut <= 0:  # no line break yet: keep reading (a file written on one line)
                rest = buf
                continue
            yield buf[:cut]
            rest = buf[cut:]
        if rest.strip():
            yield rest


def _ids(found: list[bytes]) -> np.ndarray:
    return np.fromstring(b" ".join(found), dtype=np.int64, sep=" ")


def scan_entities(path: Path, mode: str = FAST, block_bytes: int = BLOCK_BYTES) -> EntityScan:
    """Entity definitions and references of the IFC-SPF file at ``path`` (see the module docstring)."""
    definitions: list[np.ndarray] = []
    references: list[tuple[np.ndarray, np.ndarray]] = []
    projects = 0
    in_data = False
    for block in _blocks(Path(path), block_bytes):
        if not in_data:  # the header holds no entities (and may hold comments)
            start = _DATA.search(block)
            if start is None:
                continue
            block, in_data = b"\n" + block[start.end():], True
        if mode == EXACT:
            block = _STRING_OR_COMMENT.sub(b" ", block)
            defined = _EXACT_DEFINITION.findall(block)
        else:
            defined = _FAST_DEFINITION.findall(block)
        definitions.append(_ids(defined))
        refs, counts = np.unique(_ids(_REFERENCE.findall(block)), return_counts=True)
        references.append((refs, counts))
        projects += len(_PROJECT.findall(block))
    defined_ids = np.sort(np.concatenate(definitions)) if definitions else np.empty(0, np.int64)
    duplicates = np.unique(defined_ids[1:][defined_ids[1:] == defined_ids[:-1]])
    missing, example = 0, None
    if references:
        refs = np.concatenate([r for r, _ in references])
        counts = np.concatenate([c for _, c in references])
        absent = ~_contains(defined_ids, refs)
        missing = int(counts[absent].sum())
        example = int(refs[absent].min()) if missing else None
    return EntityScan(declared=len(defined_ids), duplicates=tuple(int(i) for i in duplicates[:10]),
                      duplicate_count=len(duplicates), missing_references=missing, missing_example=example,
                      projects=projects)


def _contains(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Whether each of ``ids`` is in ``sorted_ids`` (binary search: memory bounded whatever the ids are)."""
    if not len(sorted_ids):
        return np.zeros(len(ids), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return sorted_ids[at] == ids


def check_entities(path: Path) -> int:
    """Raise :class:`IfcReadError` for duplicate entity ids, references to missing entities or no IfcProject.

    Returns how many entity instances the file defines. Runs before IfcOpenShell parses the file.
    """
    scan = scan_entities(path)
    if scan.suspicious and not scan.duplicate_count:  # a duplicate seen at a line start is one (no string holds a line break)
        scan = scan_entities(path, EXACT)
    if scan.duplicate_count:
        more = f" ({scan.duplicate_count} ids defined more than once)" if scan.duplicate_count > 1 else ""
        raise IfcReadError(f"duplicate entity id #{scan.duplicates[0]}{more}")
    if scan.missing_references:
        raise IfcReadError(f"truncated or corrupt IFC: {scan.missing_references} references to missing entities, "
                           f"e.g. #{scan.missing_example}")
    if scan.projects != 1:
        raise _projects_error(scan.projects)
    return scan.declared


def _projects_error(count: int) -> IfcReadError:
    return IfcReadError(f"{count or 'no'} IfcProject in the file: not an IFC model (a model has exactly one)")


def check_project(ifc_file: ifcopenshell.file) -> None:
    """Raise :class:`IfcReadError` unless the opened file has exactly one IfcProject."""
    projects = len(ifc_file.by_type("IfcProject"))
    if projects != 1:
        raise _projects_error(projects)


def check_spatial_tree(tree: SpatialTree) -> None:
    """Raise :class:`IfcReadError` unless the file's spatial tree has a site, building or storey of its own."""
    if not tree.spatial_elements:
        raise IfcReadError("no site, building or storey in the file's spatial tree: nothing to load")
