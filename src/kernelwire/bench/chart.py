"""The PNG chart: per scenario, each contender's median (min-max bars) and kernelwire's ratios."""

from __future__ import annotations

from pathlib import Path

from .base import TIME_UNITS
from .contenders import CONTENDERS
from .report import Results, label


def _color(name: str, palette: list[str]) -> str:
    """One colour per contender, the same in every chart (and for ratios against it)."""
    names = list(CONTENDERS)
    index = names.index(name) if name in names else len(names) + hash(name) % 8
    return palette[index % len(palette)]


def draw(results: Results, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    scenarios = [(s, cases) for s, cases in results.scenarios if cases]
    fig, axes = plt.subplots(
        len(scenarios),
        2,
        figsize=(15, 4.2 * len(scenarios)),
        squeeze=False,
        gridspec_kw={"width_ratios": [3, 2]},
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (scenario, cases), (left, right) in zip(scenarios, axes, strict=True):
        names = [c for c in results.contenders if c not in results.unavailable]
        width = 0.8 / max(len(names), 1)
        for i, name in enumerate(names):
            xs, ys, lo, hi = [], [], [], []
            for x, case in enumerate(cases):
                summary = results.summaries.get((scenario.name, case.key, name))
                if summary and summary.spread:
                    s = summary.spread
                    xs.append(x + (i - (len(names) - 1) / 2) * width)
                    ys.append(s.median)
                    lo.append(s.median - s.low)
                    hi.append(s.high - s.median)
            if xs:
                left.bar(
                    xs,
                    ys,
                    width,
                    yerr=[lo, hi],
                    capsize=2,
                    label=results.heading(name),
                    color=_color(name, colors),
                )
        left.set_yscale("log")
        left.set_xticks(
            range(len(cases)),
            [
                f"{c.label}\n({c.unit}{', lower is better' if c.unit in TIME_UNITS else ''})"
                for c in cases
            ],
            fontsize=8,
        )
        left.set_title(f"{scenario.title}: median, min–max", fontsize=10)
        left.legend(fontsize=7)
        left.grid(axis="y", alpha=0.3)

        baselines = results.baselines()
        width = 0.8 / max(len(baselines), 1)
        for i, baseline in enumerate(baselines):
            xs, ys, lo, hi = [], [], [], []
            for x, case in enumerate(cases):
                r = results.ratio(scenario.name, case.key, baseline)
                if r:
                    xs.append(x + (i - (len(baselines) - 1) / 2) * width)
                    ys.append(r.spread.median)
                    lo.append(r.spread.median - r.spread.low)
                    hi.append(r.spread.high - r.spread.median)
            if xs:
                right.bar(
                    xs,
                    ys,
                    width,
                    yerr=[lo, hi],
                    capsize=2,
                    label=f"vs {label(baseline)}",
                    color=_color(baseline, colors),
                    alpha=0.8,
                )
        right.axhline(1.0, color="black", linewidth=0.8)
        right.set_yscale("log")
        right.yaxis.set_major_formatter(ScalarFormatter())
        right.yaxis.set_minor_formatter(NullFormatter())
        right.set_xticks(range(len(cases)), [c.label for c in cases], fontsize=8)
        subject = label(results.subject) if results.subject else "kernelwire"
        right.set_title(f"{subject} speed ratio (> 1: faster)", fontsize=10)
        right.legend(fontsize=7)
        right.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
