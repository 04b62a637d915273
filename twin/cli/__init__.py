"""The ``campus-twin`` command: a thin adapter over the packages (the composition root).

Each subcommand parses its arguments, calls ``twin`` (or the package it needs) and turns
library errors into one-line messages (exit status 1; wrong arguments exit 2, click's
convention). Only this package imports ``ingest``, ``models_bim``, ``simulators`` and
``dashboard``, lazily, inside the function that needs them; starting and stopping services
is :mod:`twin.orchestrate`'s.

Its modules, by what they do:

- :mod:`twin.cli.base`: the group and its options, one-line errors (:func:`friendly`), JSON output, signals;
- :mod:`twin.cli.db`, :mod:`twin.cli.devices`, :mod:`twin.cli.adapters`, :mod:`twin.cli.sites`, :mod:`twin.cli.users`,
  :mod:`twin.cli.bim`: those command groups;
- :mod:`twin.cli.simulate`: ``simulate``; :mod:`twin.cli.run`: ``ingest``, ``dashboard``, ``monitor``, ``demo``;
- :mod:`twin.cli.data`: ``export`` (CSV, or ``export brick``), ``kpis``, ``report``; :mod:`twin.cli.notify`: ``notify``;
- :mod:`twin.cli.parts`: the services made of the other packages, and the demo's network of schools.
"""

from __future__ import annotations

from twin.cli import adapters, bim, data, db, devices, notify, run, simulate, sites, users  # noqa: F401  (each adds its commands to main)
from twin.cli.base import friendly, main, parse_time, print_json, require_mqtt, settings_of, stop_on_signals
from twin.cli.bim import bim_loader_for, load_bim
from twin.cli.parts import ensure_network

__all__ = ["bim_loader_for", "ensure_network", "friendly", "load_bim", "main", "parse_time", "print_json",
           "require_mqtt", "settings_of", "stop_on_signals"]
