"""Room footprints computed by a child process while the import reads the rest of the file.

On two or more CPUs the import's own Python work (spatial tree, relationships, devices)
keeps one core busy; the geometry then runs on another, in a child that opens the file
itself::

    process = footprint_source(path)          # None when it would not pay off
    ...                                       # read the model meanwhile
    footprints = process.collect(progress)    # {GlobalId: Footprint}

The child is ``python -m models_bim.footprint_process FILE``, not a multiprocessing child:
it never re-imports the caller's main module (scripts without a ``__main__`` guard work; a
:class:`twin.children.ModuleChild`),
a geometry kernel that crashes takes down the child only (:meth:`FootprintProcess.collect`
then raises :class:`IfcReadError`), and the child dies with its parent. The child writes pickled messages to its stdout:
``("progress", done, total)``, then ``("done", gids, wkbs, areas, z_mins, z_maxs, peak_rss_bytes)``
or ``("error", text)``.

The child reads only what a space's geometry needs (:func:`open_for_geometry`): IfcOpenShell
indexes the file and parses an entity when it is first read (``lazy``), and skips
relationships, properties, quantities, elements and types altogether (``bypass_types``). On
the 13 MB generated campus its peak RSS is 111 MB instead of 149 MB (opening the whole file),
on a 55 MB campus 183 MB instead of 379 MB, with the same footprints bit for bit. Its
footprints (a few hundred bytes each) are sent together at the end: streaming them one by one
would save about 1 % of its peak, and a child blocked on a full pipe while its parent reads
the rest of the file would no longer run alongside it.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from pathlib import Path
from typing import BinaryIO

import ifcopenshell
import ifcopenshell.ifcopenshell_wrapper
import shapely

from models_bim.errors import IfcReadError
from models_bim.footprints import THREADS, Footprint, FootprintJob, Progress
from models_bim.memory import note_child_peak, peak_rss_bytes
from twin.children import ChildDied, ModuleChild, send_message
from twin.process import die_with_parent

#: Files of at least this size (bytes) get their footprints from a child process when there is
#: more than one CPU. Below it, starting Python and parsing the file a second time cost more than
#: they save (office-a, 4 MB and 99 spaces, imports in 0.5 s in one process).
PROCESS_MIN_BYTES = 8 * 2**20
#: How often (shapes) the child reports progress.
PROGRESS_EVERY = 50
#: Classes whose instances (and those of their subclasses) the child does not read: a space's
#: geometry (representations, placements, units, contexts) never refers to them.
GEOMETRY_FREE_CLASSES = ("IfcRelationship", "IfcPropertyDefinition", "IfcProperty", "IfcPhysicalQuantity",
                         "IfcElement", "IfcTypeObject")


class FootprintProcess:
    """The footprints of every IfcSpace of the IFC file at ``path``, computed by a child process.

    Always :meth:`close` it (``collect`` does): a child still running is stopped.
    """

    def __init__(self, path: Path) -> None:
        #: The child's own peak RSS (bytes), once it has sent its footprints.
        self.peak_rss_bytes: int | None = None
        self._child = ModuleChild("models_bim.footprint_process", str(path), package_root=_package_root())

    def collect(self, progress: Progress | None = None) -> dict[str, Footprint]:
        """Footprints by GlobalId, as :meth:`models_bim.footprints.FootprintJob.collect` gives them."""
        try:
            for kind, *body in self._child.messages():
                if kind == "progress":
                    if progress:
                        progress("footprints", *body)
                elif kind == "error":
                    raise IfcReadError(f"footprints: {body[0]}")
                else:
                    gids, wkbs, areas, z_mins, z_maxs, self.peak_rss_bytes = body
                    note_child_peak(self.peak_rss_bytes)
                    return {gid: Footprint(polygon, area, z_min, z_max) for gid, polygon, area, z_min, z_max
                            in zip(gids, shapely.from_wkb(wkbs), areas, z_mins, z_maxs, strict=True)}
        except ChildDied as exc:
            raise IfcReadError(f"the geometry kernel failed on this file: footprint process {exc}") from None
        finally:
            self.close()
        raise AssertionError("unreachable: messages() ends by ChildDied")  # pragma: no cover

    def close(self) -> None:
        """Stop the child if it still runs; release its pipes."""
        self._child.close()


def footprint_source(path: Path) -> FootprintProcess | None:
    """A :class:`FootprintProcess` for ``path`` when it pays off (a big file, a spare CPU), else None."""
    try:
        big = os.path.getsize(path) >= PROCESS_MIN_BYTES
    except OSError:
        return None
    return FootprintProcess(path) if big and THREADS > 1 else None


def _package_root() -> str:
    """The folder holding ``models_bim``, so the child imports the same code as its parent."""
    return str(Path(__file__).resolve().parent.parent)


@functools.cache
def _geometry_free_names() -> tuple[str, ...]:
    """Every class of :data:`GEOMETRY_FREE_CLASSES` and their subclasses, in every schema IfcOpenShell reads."""
    names: set[str] = set()

    def visit(declaration: ifcopenshell.ifcopenshell_wrapper.entity) -> None:
        names.add(declaration.name())
        for sub in declaration.subtypes():
            visit(sub)

    for schema_name in ifcopenshell.ifcopenshell_wrapper.schema_names():
        schema = ifcopenshell.ifcopenshell_wrapper.schema_by_name(schema_name)
        for root in GEOMETRY_FREE_CLASSES:
            try:
                visit(schema.declaration_by_name(root))
            except (RuntimeError, KeyError):  # no such class in this schema
                continue
    return tuple(sorted(names))


def open_for_geometry(path: str) -> ifcopenshell.file:
    """The IFC file at ``path`` read for its spaces' geometry only (see the module's docstring).

    Uses what this IfcOpenShell offers of ``lazy`` and ``bypass_types``; without either it reads the whole file.
    """
    offered = inspect.signature(ifcopenshell.open).parameters
    options: dict[str, object] = {}
    if "lazy" in offered:
        options["lazy"] = True
    if "bypass_types" in offered:
        options["bypass_types"] = _geometry_free_names()
    return ifcopenshell.open(path, **options)


def compute(path: str, out: BinaryIO) -> None:
    """The child's work: open ``path``, triangulate its spaces, send the footprints (or the error) to ``out``."""
    try:
        ifc_file = open_for_geometry(path)

        def report(stage: str, done: int, total: int) -> None:
            if done % PROGRESS_EVERY == 0 or done == total:
                send_message(out, ("progress", done, total))

        found = FootprintJob(ifc_file, ifc_file.by_type("IfcSpace")).collect(report)
        gids = list(found)
        shapes = [found[g] for g in gids]
        send_message(out, ("done", gids, shapely.to_wkb([f.polygon for f in shapes]), [f.area_m2 for f in shapes],
                    [f.z_min for f in shapes], [f.z_max for f in shapes], peak_rss_bytes()))
    except BrokenPipeError:  # the parent is gone
        raise SystemExit(1) from None
    except Exception as exc:  # noqa: BLE001 - any failure goes to the parent, which raises it as IfcReadError
        send_message(out, ("error", f"{type(exc).__name__}: {exc}"))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m models_bim.footprint_process FILE")
    die_with_parent()  # an import killed outright (say at the dashboard's upload time limit) takes us along
    compute(sys.argv[1], sys.stdout.buffer)
