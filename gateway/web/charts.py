"""Tiny server-side SVG charts: geometry here, markup in templates/charts.html. No scripts, no CDN."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"


@dataclass
class Chart:
    width: int
    height: int
    title: str
    bars: list[Bar] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)
    empty: bool = False


def _scale(maximum: int) -> int:
    return max(maximum, 1)


def horizontal_bars(title: str, items: list[tuple[str, int]], css: str = "s-block") -> Chart:
    row, label_width, width = 22, 200, 640
    chart = Chart(width, max(row * len(items) + 10, 40), title, empty=not items)
    top = _scale(max((n for _, n in items), default=0))
    for i, (name, count) in enumerate(items):
        y = 5 + i * row
        length = (width - label_width - 60) * count / top
        chart.labels.append(Label(label_width - 6, y + 14, name[:32], "end"))
        chart.bars.append(Bar(label_width, y, max(length, 1), row - 6, css, f"{name}: {count}"))
        chart.labels.append(Label(label_width + length + 6, y + 14, str(count), "start"))
    return chart


def grouped_columns(title: str, categories: list[str], series: list[tuple[str, str, list[int]]]) -> Chart:
    """series: (name, css class, one value per category)."""
    width, height, bottom, left = 640, 220, 30, 40
    chart = Chart(width, height, title, legend=[(name, css) for name, css, _ in series])
    top = _scale(max((v for _, _, values in series for v in values), default=0))
    chart.empty = top == 1 and not any(v for _, _, values in series for v in values)
    slot = (width - left) / max(len(categories), 1)
    bar = slot * 0.8 / max(len(series), 1)
    plot = height - bottom - 10
    chart.labels.append(Label(left - 4, 16, str(top), "end"))
    for i, category in enumerate(categories):
        x0 = left + i * slot + slot * 0.1
        for j, (name, css, values) in enumerate(series):
            h = plot * values[i] / top
            chart.bars.append(Bar(x0 + j * bar, 10 + plot - h, bar - 1, h, css, f"{category} {name}: {values[i]}"))
        if len(categories) <= 14 or i % 2 == 0:
            chart.labels.append(Label(x0 + slot * 0.4, height - 12, category))
    return chart


def stacked_columns(title: str, categories: list[str], stacks: list[dict[str, int]],
                    kinds: list[str]) -> Chart:  # fmt: skip
    width, height, bottom, left = 640, 220, 30, 40
    chart = Chart(width, height, title, legend=[(k.replace("_", " "), f"p-{k}") for k in kinds])
    top = _scale(max((sum(s.values()) for s in stacks), default=0))
    chart.empty = not any(sum(s.values()) for s in stacks)
    slot = (width - left) / max(len(categories), 1)
    plot = height - bottom - 10
    chart.labels.append(Label(left - 4, 16, str(top), "end"))
    for i, (category, stack) in enumerate(zip(categories, stacks, strict=True)):
        x, base = left + i * slot + slot * 0.1, 10 + plot
        for kind in kinds:
            value = stack.get(kind, 0)
            if value:
                h = plot * value / top
                base -= h
                chart.bars.append(Bar(x, base, slot * 0.8, h, f"p-{kind}", f"{category}: {value} {kind}"))
        chart.labels.append(Label(x + slot * 0.4, height - 12, category))
    return chart
