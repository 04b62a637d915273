"""Peak memory (resident set size) of an import: this process and its footprint process.

::

    summary["peak_rss_mb"] = peak_rss_mb()       # this process's peak + its footprint child's

On Linux the peak is ``VmHWM`` of ``/proc/self/status``. ``getrusage().ru_maxrss`` is not used
where it misleads: the kernel carries a process's high-water mark over ``exec``, so a child
started from a 400 MB process reports at least 400 MB however little it uses itself (the
"451 MB footprint process" of issue 14 was the benchmark's own size). A footprint process
therefore reports its own ``VmHWM`` (:func:`note_child_peak`), and :func:`peak_rss_mb` adds the
largest one to this process's peak: both run at once, so the sum bounds what the import needs
(shared library pages counted in both).

The figures cover the life of the process: one import per process (the CLI, the dashboard's
upload process, the benchmark's measurements) gives that import's peak.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
#: The largest peak (bytes) a footprint process of this process reported.
_children_peak = 0


def peak_rss_bytes() -> int:
    """The peak resident set size of this process (bytes): ``VmHWM``, else ``ru_maxrss``."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, kB elsewhere


def note_child_peak(peak_bytes: int) -> None:
    """Record the peak a footprint process reported about itself."""
    global _children_peak
    _children_peak = max(_children_peak, int(peak_bytes))


def children_peak_rss_bytes() -> int:
    """The largest peak (bytes) a footprint process of this process reported; 0 when none ran."""
    return _children_peak


def peak_rss_mb() -> float:
    """Peak RSS of the import in MB (2**20 bytes): this process's plus its largest footprint process's."""
    return round((peak_rss_bytes() + children_peak_rss_bytes()) / 2**20, 1)
