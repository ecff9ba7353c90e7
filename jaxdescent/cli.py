"""The ``jaxdescent`` command: ``jaxdescent reproduce`` prints the lecture beside jaxdescent's numbers."""

import argparse
import json
import math
import sys
from typing import Optional, Sequence


def _number(x: float, decimals: int) -> str:
    if not math.isfinite(x):
        return str(x)
    if abs(x) >= 1e10 or 0 < abs(x) < 10.0**-decimals:
        return f"{x:.3e}"
    if decimals == 0 or x.is_integer() and abs(x) > 1:
        return f"{x:,.0f}"
    return f"{x:,.{decimals}f}"


def format_rows(rows) -> str:
    """The lecture table as aligned text."""
    mark = {True: "yes", False: "NO", None: "—"}
    table = [("quantity", "lecture", "float32", "float64", "same", "note")]
    for r in rows:
        shown = min(r.decimals + 2, 8)
        lecture = "?" if r.lecture is None else _number(r.lecture, r.decimals)
        table.append((r.quantity, lecture, _number(r.float32, shown), _number(r.float64, shown), mark[r.agrees], r.note))
    widths = [max(len(line[i]) for line in table) for i in range(5)]
    lines = []
    for line in table:
        cells = [line[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(line[1:5], widths[1:])]
        lines.append("  ".join(cells + [line[5]]).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _reproduce(args) -> None:
    from jaxdescent.lecture import reproduce

    rows = reproduce()
    if args.json:
        print(json.dumps([dict(r._asdict(), agrees=r.agrees) for r in rows], indent=1, allow_nan=True))
    else:
        print(format_rows(rows))
        print('\n"same": float32 matches the slide at the slide\'s precision. Iterates are numbered from 0 (the start w = 1.9).')


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jaxdescent", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "reproduce", help="every number of the lecture beside jaxdescent's",
        description="Recompute every number of the lecture in float32 and float64 and print them beside the slides'.",
        epilog="example: jaxdescent reproduce --json > lecture.json")
    r.add_argument("--json", action="store_true", help="print the table as JSON")
    r.set_defaults(run=_reproduce)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, TypeError, OSError) as e:
        print(f"jaxdescent {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
