"""The campaign report as one self-contained HTML file: matplotlib charts inlined as SVG, no script, no fetch.

matplotlib is imported here only, when a report is drawn, so that no other command pays for it. Text is
drawn as paths (``svg.fonttype = path``): the page needs no font, no script and no network, which its
Content-Security-Policy (``default-src 'none'``) also enforces in the browser. Every piece of data that
comes from a user or a provider (the campaign's name, error codes and texts) is escaped for HTML, and
mathtext is off, so that a ``$`` in a code is drawn as written.
"""

from __future__ import annotations

import html
import io
import re
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from bulksend.reports import ReportData

COLOURS = {
    "delivered": "#2e7d32",
    "sent": "#1976d2",  # accepted, awaiting a receipt
    "undelivered": "#ef6c00",
    "failed": "#c62828",
    "other": "#9e9e9e",  # queued, sending, unknown
    "queued": "#546e7a",
}
TOP = 12  # bars per chart; the rest are summed into "others"
RC = {
    "svg.fonttype": "path",
    "text.parse_math": False,
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 96,
}


def render(data: "ReportData") -> tuple[str, int]:
    """(the page, how many charts it holds)."""
    import matplotlib

    with matplotlib.rc_context(RC):
        charts = [
            ("Delivery funnel", _funnel(data), "How many messages were queued, taken by the provider, and delivered."),
            ("Failures by reason", _failures(data), "Messages the provider refused (failed) or could not deliver "
                                                    "(undelivered), by code."),
            ("By country", _countries(data), "Each country's messages by outcome."),
            ("Over time", _over_time(data), "Messages accepted by the provider and delivery receipts recorded."),
        ]
    sections = []
    drawn = 0
    for title, svg, caption in charts:
        if svg is None:
            body = '<p class="empty">Nothing to show yet.</p>'
        else:
            body = svg
            drawn += 1
        sections.append(
            f'<section class="chart"><h2>{_e(title)}</h2><p class="caption">{_e(caption)}</p>{body}</section>'
        )
        if title == "Failures by reason" and data.failures:
            sections.append(_failure_table(data))
    return _page(data, "\n".join(sections)), drawn


# ----------------------------------------------------------------------------------------- the charts

def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _counts_axis(axis) -> None:
    """Message counts are whole numbers: no 0.5 ticks."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": "bulksend"})
    text = buffer.getvalue()
    start = text.find("<svg")  # drop the XML declaration and DOCTYPE: the SVG is inlined in HTML
    svg = text[start:]
    # Scale with the page, keep the drawing's proportions.
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1 class="figure"', svg, count=1)


def _funnel(data: "ReportData") -> str | None:
    if not data.total:
        return None
    d = data.delivery
    stages = [("Queued", data.total, COLOURS["queued"]), ("Accepted", d.accepted, COLOURS["sent"]),
              ("Delivered", d.delivered, COLOURS["delivered"])]
    fig = _figure(8, 2.4)
    ax = fig.add_subplot()
    labels = [s[0] for s in reversed(stages)]
    values = [s[1] for s in reversed(stages)]
    bars = ax.barh(labels, values, color=[s[2] for s in reversed(stages)])
    ax.bar_label(bars, labels=[f"{v:,} ({v / data.total:.0%})" for v in values], padding=4)
    ax.set_xlim(0, data.total * 1.25)
    ax.set_xlabel("messages")
    _counts_axis(ax.xaxis)
    return _svg(fig)


def _failures(data: "ReportData") -> str | None:
    if not data.failures:
        return None
    groups = data.failures[:TOP]
    rest = sum(g.count for g in data.failures[TOP:])
    labels = [f"{g.code or 'no code'} ({g.state})" for g in groups]
    values = [g.count for g in groups]
    colours = [COLOURS[g.state] for g in groups]
    if rest:
        labels.append("others")
        values.append(rest)
        colours.append(COLOURS["other"])
    fig = _figure(8, 0.45 * len(labels) + 1.0)
    ax = fig.add_subplot()
    bars = ax.barh(labels[::-1], values[::-1], color=colours[::-1])
    ax.bar_label(bars, labels=[f"{v:,}" for v in values[::-1]], padding=4)
    ax.set_xlim(0, max(values) * 1.2)
    ax.set_xlabel("messages")
    _counts_axis(ax.xaxis)
    return _svg(fig)


def _countries(data: "ReportData") -> str | None:
    if not data.countries:
        return None
    ranked = sorted(data.countries.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    shown = ranked[:TOP]
    if len(ranked) > TOP:
        others: Counter = Counter()
        for _, counts in ranked[TOP:]:
            others.update(counts)
        shown.append(("others", others))
    shown.reverse()
    fig = _figure(8, 0.45 * len(shown) + 1.3)
    ax = fig.add_subplot()
    names = [name for name, _ in shown]
    left = [0] * len(shown)
    parts = [("delivered", ("delivered",)), ("awaiting receipt", ("sent",)), ("undelivered", ("undelivered",)),
             ("failed", ("failed",)), ("not sent yet / unknown", ("queued", "sending", "unknown"))]
    for (label, states), colour in zip(parts, ("delivered", "sent", "undelivered", "failed", "other")):
        widths = [sum(counts.get(s, 0) for s in states) for _, counts in shown]
        if any(widths):
            ax.barh(names, widths, left=left, color=COLOURS[colour], label=label)
            left = [a + b for a, b in zip(left, widths)]
    ax.set_xlabel("messages")
    _counts_axis(ax.xaxis)
    ax.legend(loc="lower right", frameon=False, fontsize=8)
    return _svg(fig)


def _bucket(span: timedelta) -> tuple[int, str, timedelta]:
    """Characters of the timestamp to keep, the bucket's name and its length: minutes, hours or days."""
    if span <= timedelta(hours=3):
        return 16, "minute", timedelta(minutes=1)
    if span <= timedelta(days=3):
        return 13, "hour", timedelta(hours=1)
    return 10, "day", timedelta(days=1)


def _parse(key: str) -> datetime:
    fmt = {16: "%Y-%m-%dT%H:%M", 13: "%Y-%m-%dT%H", 10: "%Y-%m-%d"}[len(key)]
    return datetime.strptime(key, fmt).replace(tzinfo=timezone.utc)


def _over_time(data: "ReportData") -> str | None:
    keys = list(data.sent_by_minute) + list(data.delivered_by_minute)
    if not keys:
        return None
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    first, last = _parse(min(keys)), _parse(max(keys))
    width, unit, step = _bucket(last - first)
    fig = _figure(8, 3)
    ax = fig.add_subplot()
    for counter, label, colour in ((data.sent_by_minute, "accepted", COLOURS["sent"]),
                                   (data.delivered_by_minute, "delivered", COLOURS["delivered"])):
        if not counter:
            continue
        buckets: Counter = Counter()
        for key, n in counter.items():
            buckets[key[:width]] += n
        times = sorted(buckets)
        ax.plot([_parse(t) for t in times], [buckets[t] for t in times], marker="o", markersize=4,
                color=colour, label=label)
    ax.set_ylabel(f"messages per {unit} (UTC)")
    ax.set_ylim(bottom=0)
    _counts_axis(ax.yaxis)
    ax.set_xlim(_parse(min(keys)[:width]) - step, _parse(max(keys)[:width]) + step)  # one bucket of margin
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.legend(frameon=False)
    return _svg(fig)


# -------------------------------------------------------------------------------------- the page

def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _failure_table(data: "ReportData") -> str:
    rows = "".join(
        f"<tr><td class=\"code\">{_e(g.code or 'no code')}</td><td>{_e(g.state)}</td>"
        f"<td class=\"n\">{g.count:,}</td><td>{_e(g.meaning or 'not in bulksend’s table of codes')}</td>"
        f"<td class=\"text\">{_e(g.example or '')}</td></tr>"
        for g in data.failures
    )
    return (
        '<section class="table"><h2>What each code means</h2><table><thead><tr><th>code</th><th>state</th>'
        f'<th>messages</th><th>meaning</th><th>the provider said</th></tr></thead><tbody>{rows}</tbody></table>'
        "</section>"
    )


def _card(label: str, value: str, note: str = "") -> str:
    small = f"<small>{_e(note)}</small>" if note else ""
    return f'<div class="card"><span>{_e(label)}</span><strong>{_e(value)}</strong>{small}</div>'


def _page(data: "ReportData", sections: str) -> str:
    c = data.campaign
    d = data.delivery
    rate = f"{d.delivered / d.accepted:.0%} of accepted" if d.accepted else ""
    cards = "".join([
        _card("recipients", f"{data.total:,}"),
        _card("accepted", f"{d.accepted:,}"),
        _card("delivered", f"{d.delivered:,}", rate),
        _card("undelivered", f"{d.undelivered:,}"),
        _card("awaiting a receipt", f"{d.awaiting:,}"),
        _card("failed", f"{data.counts.get('failed', 0):,}"),
        _card("credits spent", f"{data.credits_debited - data.credits_refunded:,}",
              f"{data.credits_debited:,} debited, {data.credits_refunded:,} refunded"),
        _card("credits held", f"{data.held:,}"),
    ])
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Campaign {_e(c.name)} – bulksend report</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 60rem;
        padding: 0 1rem; color: #212121; }}
h1 {{ margin-bottom: .2rem; }}
.meta {{ color: #616161; margin-top: 0; }}
.cards {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(11rem, 1fr)); gap: .6rem; margin: 1.2rem 0; }}
.card {{ border: 1px solid #e0e0e0; border-radius: 6px; padding: .6rem .8rem; }}
.card span {{ display: block; color: #616161; font-size: .85rem; }}
.card strong {{ font-size: 1.5rem; }}
.card small {{ display: block; color: #757575; }}
section {{ margin: 1.8rem 0; }}
.caption {{ color: #616161; margin-top: -.5rem; }}
svg.figure {{ width: 100%; height: auto; }}
table {{ border-collapse: collapse; width: 100%; font-size: .9rem; }}
th, td {{ text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #eeeeee; vertical-align: top; }}
td.n {{ text-align: right; }}
td.code {{ font-family: ui-monospace, monospace; }}
td.text {{ color: #616161; }}
.empty {{ color: #757575; font-style: italic; }}
footer {{ color: #9e9e9e; font-size: .8rem; margin-top: 3rem; }}
</style>
</head>
<body>
<h1>Campaign {_e(c.name)}</h1>
<p class="meta">#{c.id} · {_e(c.channel)} via {_e(c.provider)} · started {_e(c.created_at)} · {_e(c.state)}</p>
<div class="cards">{cards}</div>
{sections}
<footer>Generated by bulksend on {generated}. Delivery counts come from the receipts recorded so far
(bulksend campaigns refresh, or bulksend webhooks serve).</footer>
</body>
</html>
"""
