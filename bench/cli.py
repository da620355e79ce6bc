"""``python -m bench`` (what ``scripts/bench`` runs): parse, measure or re-render, write the results.

Exit status: 0 done, 1 the bench failed (what was measured is still written),
2 a mistake on the command line (or a --render JSON that cannot be read), 130 interrupted before measuring.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from bench import report, tables
from bench.options import ROOT, Options, parse
from bench.progress import say


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench (or only re-render ``--render JSON``); the exit status."""
    opts = parse(argv)
    if opts.render is not None:
        try:
            result = json.loads(opts.render.read_text())
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            print(f"error: --render {opts.render}: {why} (give a results/bench.json that scripts/bench wrote)",
                  file=sys.stderr)
            return 2
        write_results(opts, result)
        return 0
    # Imported here, not above: the Docker SDK and lab.testing (which brings pytest) take a third of a
    # second that --help, a mistyped option and --render do without.
    from bench import run

    try:
        result = run.measure(opts)
    except run.SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    write_results(opts, result)
    return 1 if "error" in result["meta"] else 0


def write_results(opts: Options, result: dict[str, Any]) -> None:
    """Evaluate the targets; write the JSON, the Markdown and the SVG plot; print the tables."""
    # matplotlib takes most of a second to import: only a run that draws pays it.
    from bench import plot

    result["targets"] = report.evaluate_targets(
        result.get("upper", {}).get("summary", []), result.get("udp", {}).get("summary", []),
        result.get("chat", {}).get("summary", []),
    )
    out = opts.output
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    table = tables.markdown(result)
    out.with_suffix(".md").write_text(table)
    out.with_suffix(".svg").write_text(plot.svg(result))
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    say(f"wrote {shown}, {shown.with_suffix('.md')}, {shown.with_suffix('.svg')}")
    print()
    print(table, end="")
