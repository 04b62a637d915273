"""``campus-twin bim``: generate, load and compare BIM (IFC) models; :func:`load_bim`, what the
dashboard's IFC upload is given (:func:`bim_loader_for`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from twin.cli.base import friendly, main, operator_name, print_json, settings_of
from twin.orchestrate import migrated_url


@main.group()
def bim() -> None:
    """Generate and load BIM (IFC) models."""


@bim.command("generate")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--site-id", default="school", show_default=True)
@click.option("--name", default="示范学校 Demo School", show_default=True)
@click.option("--buildings", type=click.IntRange(1, 24), default=1, show_default=True, help="Teaching buildings.")
@click.option("--storeys", type=click.IntRange(1, 30), default=2, show_default=True, help="Per building.")
@click.option("--classrooms", type=click.IntRange(0, 100), default=6, show_default=True, help="Per storey.")
@click.option("--labs", type=click.IntRange(0, 20), default=1, show_default=True, help="On the ground floor.")
@click.option("--orientation", type=click.FloatRange(-360, 360), default=0.0, show_default=True,
              help="Degrees the campus is turned, counter-clockwise from east.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--network", type=click.IntRange(0, 200), default=None,
              help="Write a headquarters and N member schools into the folder OUT instead.")
@friendly
def bim_generate(out: Path, site_id: str, name: str, buildings: int, storeys: int, classrooms: int, labs: int,
                 orientation: float, seed: int, network: int | None) -> None:
    """Write a synthetic IFC4 school (or a network of them).

    Example: campus-twin bim generate school.ifc --storeys 3 --classrooms 8 --labs 2 --orientation 15

    Example: campus-twin bim generate network/ --network 13 --buildings 3
    """
    from models_bim.generate import generate_network, generate_school

    if network is not None:
        for school in generate_network(out, members=network, seed=seed, buildings=buildings):
            click.echo(f"wrote {school.path} ({school.site_id}, {school.role})")
        return
    generate_school(out, site_id=site_id, name=name, storeys=storeys, classrooms_per_storey=classrooms, labs=labs,
                    buildings=buildings, orientation_deg=orientation, seed=seed)
    click.echo(f"wrote {out}")


def load_bim(url: str, path: Path, site_id: str, *, name: str | None = None, role: str = "member",
             progress: Callable[[str, int, int], None] | None = None, dry_run: bool = False,
             allow_removals: bool = False, max_removals: float | None = None, expect_plan: str | None = None,
             applied_by: str | None = None, remote_addr: str | None = None) -> dict[str, Any]:
    """Read an IFC file and plan or import it as ``site_id`` in one transaction; return the summary (with the
    diff, the plan and whether it was applied). A revision that removes too much without ``allow_removals``
    raises ``RevisionRefused`` (see :func:`models_bim.importer.import_file`)."""
    from models_bim.diff import MAX_REMOVALS
    from models_bim.importer import import_file

    return import_file(url, path, site_id, name=name, role=role, progress=progress,  # type: ignore[arg-type]
                       dry_run=dry_run, allow_removals=allow_removals,
                       max_removals=MAX_REMOVALS if max_removals is None else max_removals,
                       expect_plan=expect_plan, applied_by=applied_by, remote_addr=remote_addr)


def bim_loader_for(url: str) -> Callable[..., dict[str, Any]]:
    """:func:`load_bim` bound to ``url``: what the dashboard's IFC upload calls (``(path, site_id, *, name, role)``,
    plus ``dry_run`` to plan and ``allow_removals``, ``expect_plan``, ``applied_by``, ``remote_addr`` to apply)."""
    return functools.partial(load_bim, url)


@bim.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--site", "site_id", required=True, help="Site id to load the model as (e.g. hq, m01).")
@click.option("--name", help="Site name; default: the IfcSite name.")
@click.option("--role", type=click.Choice(["headquarters", "member"]), default="member", show_default=True)
@click.option("--dry-run", is_flag=True, help="Show the plan (the diff against the stored twin); write nothing.")
@click.option("--allow-removals", is_flag=True,
              help="Apply even if the revision removes a building or storey, or more than --max-removals "
                   "of the site's rooms or devices.")
@click.option("--max-removals", type=click.FloatRange(0, 1), default=0.2, show_default=True,
              envvar="CAMPUS_TWIN_BIM_MAX_REMOVALS", show_envvar=True, metavar="FRACTION",
              help="Share of the site's rooms, and of its devices, a revision may remove without --allow-removals.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.pass_context
@friendly
def bim_load(ctx: click.Context, file: Path, site_id: str, name: str | None, role: str, dry_run: bool,
             allow_removals: bool, max_removals: float, as_json: bool) -> None:
    """Load an IFC file (or a new revision of it) into the twin, or only show what it would change.

    Example: campus-twin bim load school.ifc --site hq

    Example: campus-twin bim load school-v2.ifc --site hq --dry-run
    """
    from twin.domain import SITE_ID

    if not SITE_ID.fullmatch(site_id):
        raise click.BadParameter("letters, digits, '_', '.', '-' only (it goes into MQTT topics)",
                                 param_hint="--site")
    url = migrated_url(settings_of(ctx))
    from rich.console import Console
    from rich.progress import Progress

    from models_bim.importer import RevisionRefused

    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(f"loading {file.name}", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=f"{file.name}: {stage}", completed=done, total=total or None)

        try:
            summary = load_bim(url, file, site_id, name=name, role=role, progress=progress, dry_run=dry_run,
                               allow_removals=allow_removals, max_removals=max_removals, applied_by=operator_name())
            refused = None
        except RevisionRefused as exc:
            summary, refused = exc.summary, exc
    if as_json:
        print_json(summary)
    else:
        for line in _summary_lines(summary):
            click.echo(line)
    if refused is not None:
        raise click.ClickException(str(refused))


def _summary_lines(summary: dict[str, Any], limit: int = 20) -> list[str]:
    from models_bim.diff import diff_lines

    verb = "loaded" if summary["applied"] else "dry run of" if summary["dry_run"] else "refused"
    lines = [(f"{verb} {summary['file']} as site {summary['site']!r} ({summary['schema']}): "
              f"{summary['buildings']} buildings, {summary['storeys']} storeys, {summary['rooms']} rooms "
              f"({summary['rooms_without_geometry']} without geometry), {summary['devices']} devices")]
    if summary["devices_by_kind"]:
        lines.append("  devices by kind: " + ", ".join(f"{k} {v}" for k, v in summary["devices_by_kind"].items()))
        lines.append("  mapped by: " + ", ".join(f"{k} {v}" for k, v in summary["devices_by_mapping"].items()))
    if summary["derived_device_ids"]:
        lines.append(f"  device ids derived from the GlobalId: {summary['derived_device_ids']}")
    unmapped = summary["unmapped_device_details"]
    if unmapped:
        lines.append(f"  unmapped devices ({len(unmapped)}):")
        lines += [f"    {d['device_id']}  {d['kind']}  {d['name'] or '-'}  storey {d['storey'] or '-'}"
                  for d in unmapped[:limit]]
        if len(unmapped) > limit:
            lines.append(f"    ... and {len(unmapped) - limit} more (see --json)")
    # (stated count, gaps, label, what is stated, measured by, measured key, stated key, unit)
    for stated, gaps, label, what, source, measured, quantity, unit in (
            (summary["rooms_with_quantities"], summary["area_discrepancies"], "area", "floor area", "footprint",
             "footprint_m2", "quantity_m2", "m²"),
            (summary["rooms_with_stated_height"], summary["height_discrepancies"], "height", "height", "geometry",
             "geometry_m", "quantity_m", "m")):
        if stated:
            lines.append(f"  {label}: {stated} rooms state their {what}, {len(gaps)} differ from the {source} "
                         f"by more than 5%")
            lines += [f"    {g['room']}: {source} {g[measured]} {unit}, stated {g[quantity]} {unit} ({g['gap_pct']:+}%)"
                      for g in gaps[:limit]]
    lines += [f"  warning: {w}" for w in summary["warnings"]]
    lines.append(f"  changes (import #{summary['import_id']}):" if summary["applied"] else "  changes (not applied):")
    lines += [f"    {line}" for line in diff_lines(summary["diff"], limit)]
    removals = summary["plan"]["removals"]
    if removals:
        lines.append(("  applied with --allow-removals: " if summary["applied"] else "  needs --allow-removals: ")
                     + "; ".join(removals))
    if summary["dry_run"]:
        lines.append("  dry run: nothing was written")
    return lines


@bim.command("diff")
@click.argument("old", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the diff as one JSON object.")
@friendly
def bim_diff(old: Path, new: Path, as_json: bool) -> None:
    """Show what changed between two revisions of a model, offline (no database).

    Example: campus-twin bim diff school-v1.ifc school-v2.ifc --json
    """
    from models_bim.diff import diff_lines, diff_models
    from models_bim.load import read_model

    before = read_model(old, site_id="diff")
    after = read_model(new, site_id="diff")
    diff = diff_models(before, after)
    if as_json:
        print_json(diff.to_json())
        return
    for line in diff_lines(diff):
        click.echo(line)

