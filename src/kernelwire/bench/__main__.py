"""``python -m kernelwire.bench``: kernelwire vs jupyter_client vs raw pyzmq vs a C floor.

Prints a table (with a progress display while it runs) and writes
results.json (every sample), results.md and chart.png to ``--output``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from . import chart, environment, floor, report, runner
from .base import Bench, Scenario
from .contenders import CONTENDERS
from .payloads import PAYLOADS
from .processes import Peers
from .progress import Progress

TRANSPORTS = ("tcp", "ipc")


def _choices(allowed: list[str] | tuple[str, ...]):
    def parse(text: str) -> list[str]:
        items = [x.strip() for x in text.split(",") if x.strip()]
        unknown = [x for x in items if x not in allowed]
        if unknown or not items:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}")
        return items

    return parse


def parser(scenarios: dict[str, type[Scenario]]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m kernelwire.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="fewer messages and rounds: under a minute")
    p.add_argument(
        "--output",
        type=Path,
        default=Path("bench-results"),
        help="directory for results.json, results.md, chart.png (default: %(default)s)",
    )
    p.add_argument(
        "--transports",
        type=_choices(TRANSPORTS),
        default=list(TRANSPORTS),
        help="comma-separated: tcp,ipc",
    )
    p.add_argument(
        "--sizes",
        type=_choices(list(PAYLOADS)),
        default=list(PAYLOADS),
        help=f"comma-separated: {','.join(PAYLOADS)}",
    )
    p.add_argument("--rounds", type=int, help="rounds per case (default 5, 2 with --quick)")
    p.add_argument(
        "--round-trips",
        type=int,
        help="round trips per latency sample (default 5000, 500 with --quick)",
    )
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply every message count (e.g. 0.1 for a smoke run)",
    )
    default_contenders = [c.name for c in CONTENDERS.values() if c.end_to_end]
    p.add_argument(
        "--contenders",
        type=_choices(list(CONTENDERS)),
        default=default_contenders,
        help=f"comma-separated, from {','.join(CONTENDERS)} "
        f"(default: {','.join(default_contenders)})",
    )
    p.add_argument(
        "--scenarios",
        type=_choices(list(scenarios)),
        default=[],
        help="comma-separated, from " + ",".join(scenarios) + " (default: the default ones)",
    )
    p.add_argument("--no-chart", action="store_true", help="skip the PNG chart")
    p.add_argument("--floor-cache", type=Path, help="where the C floor is built")
    for cls in scenarios.values():
        cls.add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    scenario_classes = runner.SCENARIOS
    options = parser(scenario_classes).parse_args(argv)
    options.rounds = options.rounds or (2 if options.quick else 5)
    options.round_trips = options.round_trips or (500 if options.quick else 5000)
    command = shlex.join(["python", "-m", "kernelwire.bench", *argv])

    unavailable: dict[str, str] = {}
    built_floor = None
    if "floor" in options.contenders:
        try:
            built_floor = floor.build(options.floor_cache)
        except (floor.FloorUnavailable, OSError) as exc:
            unavailable["floor"] = f"not available ({exc})"

    started = time.monotonic()
    with Peers(built_floor) as peers:
        hello = peers.hello()
        for name, why in hello["unavailable"].items():
            if name in options.contenders:
                unavailable[name] = why
        implementations = {
            name: ran for name, ran in hello["implementations"].items()
            if name in options.contenders
        }
        contenders = [CONTENDERS[c] for c in options.contenders if c not in unavailable]
        scenarios = [cls() for cls in scenario_classes.values()]
        scenarios = [s for s in scenarios if s.enabled(options)]
        plan = runner.make_plan(scenarios, contenders, options)
        samples = runner.run(Bench(options, peers), plan, Progress())

    results = report.Results(
        env=environment.describe(),
        options={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(options).items()},
        scenarios=[(s, s.cases(options)) for s in scenarios],
        contenders=list(options.contenders),
        unavailable=unavailable,
        implementations=implementations,
        samples=samples,
        seconds=time.monotonic() - started,
    )
    print(report.terminal(results))
    paths = report.write(results, options.output, command)
    if not options.no_chart:
        paths["chart"] = chart.draw(results, options.output / "chart.png")
    print("\nwrote " + ", ".join(str(p) for p in paths.values()))
    return 0 if any(s.measurement for s in samples) else 1


if __name__ == "__main__":
    sys.exit(main())
