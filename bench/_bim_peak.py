"""Peak memory of one BIM import, or of the bare IfcOpenShell iteration, in this fresh process (for bim_load.py).

Prints one JSON object: ``peak_rss_self_mb`` (this process), ``peak_rss_child_mb`` (its
footprint process, 0 when none ran) and their sum ``peak_rss_mb``::

    python bench/_bim_peak.py bare FILE GEOMETRY_LIBRARY THREADS
    python bench/_bim_peak.py import FILE DATABASE_URL SITE_ID

``bare`` imports only IfcOpenShell: it opens the file and runs the geometry iterator over its
IfcSpaces with the import's settings (world coordinates, :func:`models_bim.footprints.iterator_settings`),
touching nothing. ``import`` runs :func:`models_bim.importer.import_file`. The footprint
process's peak is the one it reports about itself; when it reports none (older code), the
kernel's ``RUSAGE_CHILDREN`` figure, which also counts what this process held when it started
the child (about 80 MB: it starts before the file is opened).
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import orjson


def bare(path: str, geometry_library: str, threads: int) -> None:
    import ifcopenshell
    import ifcopenshell.geom

    f = ifcopenshell.open(path)
    settings = ifcopenshell.geom.settings()
    settings.set(settings.USE_WORLD_COORDS, True)  # as models_bim.footprints.iterator_settings
    spaces = f.by_type("IfcSpace")
    if spaces:
        iterator = ifcopenshell.geom.iterator(settings, f, threads, include=spaces, geometry_library=geometry_library)
        if iterator.initialize():
            while True:
                iterator.get()
                if not iterator.next():
                    break


def load(path: str, url: str, site_id: str) -> None:
    from models_bim.importer import import_file

    import_file(url, Path(path), site_id)


def main() -> None:
    kind, path, *rest = sys.argv[1:]
    if kind == "bare":
        bare(path, rest[0], int(rest[1]))
    else:
        load(path, rest[0], rest[1])
    from models_bim.memory import children_peak_rss_bytes, peak_rss_bytes

    child = children_peak_rss_bytes() or resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    own = peak_rss_bytes()
    print(orjson.dumps({"peak_rss_mb": round((own + child) / 2**20, 1), "peak_rss_self_mb": round(own / 2**20, 1),
                        "peak_rss_child_mb": round(child / 2**20, 1)}).decode())


if __name__ == "__main__":
    main()
