"""``qdsbench-reproduce``: plan, run or tabulate one paper's campaign.

qdsbench-reproduce --paper qds --protocol paper --plan          # status and cost of every run and stage
qdsbench-reproduce --paper qds --protocol paper --hours 2.5     # run what fits in 2.5 h, then build the tables
qdsbench-reproduce --paper qds --protocol paper --until 18:30   # the same budget as a clock time (local time)
qdsbench-reproduce --paper qds --protocol paper --tables-only   # rebuild the tables from committed records
qdsbench-reproduce --paper qds --protocol paper --commands      # one train command per unit left (cluster arrays)
qdsbench-reproduce --paper qds --protocol paper --collect       # records for runs finished elsewhere, then tables
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timedelta
from pathlib import Path

from qdsbench.errors import UserError


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="qdsbench-reproduce", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--paper", required=True, help="a manifest in conf/paper/")
    parser.add_argument("--protocol", default="paper", help="a protocol of that manifest (default: paper)")
    parser.add_argument("--tables", default="all", help="comma-separated table names, or all")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--plan", action="store_true")
    mode.add_argument("--hours", type=float, help="time budget: no run starts that cannot finish inside it")
    mode.add_argument("--until", help="time budget as a clock time: HH:MM (its next occurrence) or YYYY-MM-DDTHH:MM")
    mode.add_argument("--tables-only", action="store_true")
    mode.add_argument("--commands", action="store_true")
    mode.add_argument("--collect", action="store_true")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="run or plan only units whose grid value KEY is one of these (repeatable)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (one torch thread each)")
    parser.add_argument(
        "--results", type=Path, default=None, help="results root (default: results/; smoke: logs/smoke)"
    )
    parser.add_argument("--work", type=Path, default=None, help="work directories (default: logs/campaign/)")
    args = parser.parse_args(argv)
    if args.until is not None:
        now = datetime.now()
        try:
            args.hours = hours_until(args.until, now)
        except ValueError as err:
            parser.error(str(err))
        deadline = now + timedelta(hours=args.hours)
        # HH:MM already past today silently meant a day's budget; say which deadline was taken
        day = "today" if deadline.date() == now.date() else "tomorrow" if len(args.until) <= 5 else "on"
        print(
            f"--until {args.until}: running until {day} {deadline:%Y-%m-%d %H:%M} ({args.hours:.2f} h)",
            file=sys.stderr,
        )
    if args.hours is not None and args.hours <= 0:
        parser.error(f"--hours must be positive, got {args.hours}")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    return args


def hours_until(when: str, now: datetime | None = None) -> float:
    """Hours from ``now`` to ``when``: ``HH:MM`` is its next occurrence (today, else tomorrow), an ISO date-time is
    taken as given (local time), and one already past is an error naming it."""
    now = now or datetime.now()
    try:
        if len(when) <= 5:
            clock = datetime.strptime(when, "%H:%M").time()
            target = datetime.combine(now.date(), clock)
            target += timedelta(days=1) if target <= now else timedelta(0)
        else:
            target = datetime.fromisoformat(when)
    except ValueError:
        raise ValueError(f"--until '{when}' is not HH:MM or YYYY-MM-DDTHH:MM") from None
    if target <= now:
        raise ValueError(f"--until {when} is already past (now {now.isoformat(timespec='minutes')})")
    return (target - now).total_seconds() / 3600


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    from qdsbench.campaign.manifest import check_tables, load_manifest
    from qdsbench.campaign.runner import Campaign
    from qdsbench.config import REPO_ROOT

    try:
        manifest = load_manifest(args.paper)
        names = None if args.tables == "all" else check_tables(manifest, args.tables.split(","))
        # a protocol with its own results root (smoke: logs/smoke) keeps its records and tables out of results/
        own_root = (manifest.protocols.get(args.protocol) or {}).get("stage_results")
        only = {}
        for item in args.only:
            key, sep, values = item.partition("=")
            if not sep or not values:
                raise UserError(f"--only '{item}' is not KEY=V1,V2 (e.g. --only model.depth=1,2)")
            only[key] = values.split(",")
        campaign = Campaign(
            args.paper,
            args.protocol,
            args.results or REPO_ROOT / (own_root or "results"),
            args.work or REPO_ROOT / "logs" / "campaign",
            names,
            only,
            check_data=not args.tables_only,
        )
        if args.plan:
            print("\n".join(campaign.plan()))
        elif args.commands:
            print("\n".join(campaign.commands()))
        elif args.collect:
            for path in campaign.harvest():
                print(f"recorded {path}")
            campaign.build_tables()
        elif args.tables_only:
            campaign.build_tables()
        else:
            raise SystemExit(campaign.run(args.hours, args.jobs))
    except UserError as err:
        print(f"qdsbench-reproduce: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
