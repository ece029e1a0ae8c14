"""The run's results as a terminal table, a Markdown file and a JSON file of every sample."""

from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from .base import TIME_UNITS, Case, Sample, Scenario
from .contenders import CONTENDERS, KERNELWIRE
from .environment import one_line
from .progress import format_value
from .stats import BASELINES, Ratio, Summary, ratios, summarize


@dataclass
class Results:
    """Everything a run produced, and the derived figures every output shows."""

    env: dict[str, t.Any]
    options: dict[str, t.Any]
    scenarios: list[tuple[Scenario, list[Case]]]
    contenders: list[str]  # in column order, available or not
    unavailable: dict[str, str]  # contender -> reason
    samples: list[Sample]
    seconds: float
    #: kernelwire contender -> the modules its Session ran: {"core": ..., "io": ...}
    implementations: dict[str, dict[str, str]] = field(default_factory=dict)
    summaries: dict[tuple[str, str, str], Summary] = field(init=False)
    subject: str | None = field(init=False)  # the kernelwire the ratios are about
    ratios: list[Ratio] = field(init=False)

    def __post_init__(self) -> None:
        self.summaries = summarize(self.samples)
        measured = {s.contender for s in self.samples if s.measurement}
        self.subject = next((k for k in KERNELWIRE if k in measured), None)
        self.ratios = [r for k in KERNELWIRE if k in measured for r in ratios(self.samples, k)]

    def ratio(self, scenario: str, case: str, baseline: str) -> Ratio | None:
        for r in self.ratios:
            if (r.scenario, r.case, r.subject, r.baseline) == (
                scenario,
                case,
                self.subject,
                baseline,
            ):
                return r
        return None

    def baselines(self) -> list[str]:
        return [b for b in BASELINES if b in self.contenders and b != self.subject]

    def heading(self, name: str) -> str:
        """A contender's column heading and legend entry: for kernelwire, with what it ran."""
        ran = self.implementations.get(name)
        if ran is None:
            return label(name)
        return f"{label(name)} [{modules(ran)}]"


def label(name: str) -> str:
    """A contender's name as tables and charts show it."""
    return CONTENDERS[name].label if name in CONTENDERS else name


def modules(ran: dict[str, str]) -> str:
    """``core=cython io=cython``: the core and I/O modules a kernelwire Session ran."""
    return f"core={ran['core']} io={ran['io']}"


def _cell(results: Results, scenario: str, case: Case, contender: str, spread: bool) -> str:
    if contender in results.unavailable:
        return "not available"
    summary = results.summaries.get((scenario, case.key, contender))
    if summary is None:
        return "—"  # the scenario does not apply to this contender
    if summary.spread is None:
        return "failed"
    s = summary.spread
    text = format_value(s.median, case.unit)
    if spread:
        text += f" ({format_value(s.low, case.unit)}–{format_value(s.high, case.unit)})"
    return text


def _ratio_cell(r: Ratio | None) -> str:
    if r is None:
        return "—"
    s = r.spread
    return f"{s.median:.2f}× ({s.low:.2f}–{s.high:.2f})"


def table_rows(
    results: Results, scenario: Scenario, cases: list[Case], spread: bool
) -> tuple[list[str], list[list[str]]]:
    header = ["case", "unit", *map(results.heading, results.contenders)]
    header += [f"vs {label(b)}" for b in results.baselines()]
    rows = []
    for case in cases:
        row = [case.label, case.unit]
        row += [_cell(results, scenario.name, case, c, spread) for c in results.contenders]
        row += [_ratio_cell(results.ratio(scenario.name, case.key, b)) for b in results.baselines()]
        rows.append(row)
    return header, rows


def render(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)

    def line(r: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def _subject(results: Results) -> str:
    subject = label(results.subject) if results.subject else "kernelwire"
    return f"'vs' columns: {subject}'s speed / the other's (> 1: {subject} is faster)"


def _notes(results: Results) -> list[str]:
    notes = [f"{label(c)}: {why}" for c, why in results.unavailable.items()]
    if results.subject and results.subject != KERNELWIRE[0]:
        notes.append(
            f"ratios use {label(results.subject)}: {label(KERNELWIRE[0])} has no measurements"
        )
    failures: dict[tuple[str, str], int] = {}
    for summary in results.summaries.values():
        for error in summary.errors:
            key = (summary.contender, error)
            failures[key] = failures.get(key, 0) + 1
    for (contender, error), cases in failures.items():
        notes.append(f"{label(contender)} failed ({cases} cases): {error[:200]}")
    return notes


def _details(results: Results, scenario: Scenario, cases: list[Case], markdown: bool) -> list:
    """A scenario's own second table (``detail_table``), e.g. the cluster's CPU per process."""
    detail = getattr(scenario, "detail_table", None)
    if detail is None:
        return []
    samples = [s for s in results.samples if s.scenario == scenario.name]
    caption, header, rows = detail(cases, samples)
    if not rows:
        return []
    return [caption, render(header, rows, markdown=markdown)]


def terminal(results: Results) -> str:
    parts = []
    for scenario, cases in results.scenarios:
        header, rows = table_rows(results, scenario, cases, spread=False)
        parts.append(
            f"{scenario.title}: median of {results.options['rounds']} rounds; {_subject(results)}"
        )
        parts.append(render(header, rows, markdown=False))
        parts += _details(results, scenario, cases, markdown=False)
    parts += _notes(results)
    parts.append(
        f"{len(results.samples)} samples in {results.seconds:.0f} s on {one_line(results.env)}"
    )
    return "\n\n".join(parts)


def markdown(results: Results, command: str) -> str:
    rounds = results.options["rounds"]
    parts = [
        "## Results",
        f"Measured with `{command}` on {one_line(results.env)}.",
        f"Each cell: median of {rounds} rounds (min–max); contenders interleaved within each "
        f"round. {_subject(results)}, computed round by round within this run "
        "(for latency: shorter round trips).",
    ]
    for scenario, cases in results.scenarios:
        header, rows = table_rows(results, scenario, cases, spread=True)
        parts += [f"### {scenario.title}", render(header, rows, markdown=True)]
        parts += _details(results, scenario, cases, markdown=True)
    notes = _notes(results)
    if notes:
        parts.append("\n".join(f"- {n}" for n in notes))
    return "\n\n".join(parts) + "\n"


def to_json(results: Results, command: str) -> dict[str, t.Any]:
    return {
        "command": command,
        "environment": results.env,
        "options": results.options,
        "seconds": results.seconds,
        "scenarios": [
            {
                "name": s.name,
                "title": s.title,
                "cases": [
                    {
                        "key": c.key,
                        "label": c.label,
                        "unit": c.unit,
                        "lower_is_better": c.unit in TIME_UNITS,
                    }
                    for c in cases
                ],
            }
            for s, cases in results.scenarios
        ],
        "contenders": {
            c: {
                "label": label(c),
                "unavailable": results.unavailable.get(c),
                # the modules a kernelwire contender's Session ran (None for the others)
                "implementations": results.implementations.get(c),
            }
            for c in results.contenders
        },
        "samples": [s.as_dict() for s in results.samples],
        "summaries": [s.as_dict() for s in results.summaries.values()],
        "ratios": [r.as_dict() for r in results.ratios],
    }


def write(results: Results, out: Path, command: str) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "markdown": out / "results.md"}
    paths["json"].write_text(json.dumps(to_json(results, command), indent=1, ensure_ascii=False))
    paths["markdown"].write_text(markdown(results, command), encoding="utf-8")
    return paths
