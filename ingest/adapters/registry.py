"""The adapters ingest knows, by name (``site_adapters.adapter``)."""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType

from twin.identities import ADAPTERS


@cache
def adapter(name: str) -> ModuleType:
    """The decoder module of adapter ``name`` (``ingest.adapters.<name>``); :class:`KeyError` when unknown."""
    if name not in ADAPTERS:
        raise KeyError(f"unknown adapter {name!r} (one of {', '.join(ADAPTERS)})")
    return importlib.import_module(f"ingest.adapters.{name}")
