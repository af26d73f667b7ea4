"""Human and JSON renderings of the validate and estimate reports."""

from __future__ import annotations

from pathlib import Path

from bulksend import output
from bulksend.csvfile import delimiter_name


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


_WHY = {"first": "first", "longest": "longest", "ucs2": "UCS-2"}


def preview_lines(previews) -> list[str]:
    """The rendered messages people will read (up to three), each under a line saying what it is."""
    if not previews:
        return []
    lines = ["Messages as they will be read:"]
    for p in previews:
        size = _plural(p.segments, "message" if p.encoding == "whatsapp" else "segment")
        encoding = "" if p.encoding == "whatsapp" else f"{p.encoding} · "
        why = ", ".join(_WHY[w] for w in p.why)
        lines.append(f"  row {p.row} ({why}) · {p.e164} · {encoding}{size} · {_plural(p.credits, 'credit')}")
        lines.extend(f"    {text}" for text in p.text.splitlines() or [""])
    return lines


def _source_line(report) -> str:
    table = report.table
    csv = table.csv
    blank = f"; {_plural(table.blank, 'blank row')} skipped" if table.blank else ""
    return (
        f"{csv.path.name}: {_plural(table.rows, 'row')} ({csv.encoding_label}, "
        f"{delimiter_name(csv.delimiter)}-delimited, phone column {csv.headers[table.columns.phone]!r}){blank}"
    )


def _show_rejects(out, report) -> None:
    """Counts by reason, then a few example rows of each, one per line."""
    from rich.table import Table
    from rich.text import Text

    reasons = report.table.reasons()
    grid = Table(title="Rejected, by reason", title_justify="left", show_edge=False, pad_edge=False)
    grid.add_column("reason")
    grid.add_column("rows", justify="right")
    for code, count in reasons.items():
        grid.add_row(code, f"{count:,}")
    out.print(grid)
    if report.examples:
        from bulksend.schema import clip

        out.print()
        out.print("Examples:", style="bold")
        for code in reasons:
            for r in report.examples.get(code, []):
                out.print(Text(f"  row {r.row:<6} {code:<18} {clip(repr(r.value))}: {clip(r.detail, 120)}"))


def _country_table(report):
    from rich.table import Table

    countries = report.table.countries()
    grid = Table(title="Accepted, by country", title_justify="left", show_edge=False, pad_edge=False)
    grid.add_column("country")
    grid.add_column("recipients", justify="right")
    for code, count in list(countries.items())[:15]:
        grid.add_row(code, f"{count:,}")
    if len(countries) > 15:
        grid.add_row(f"… {len(countries) - 15} more", f"{sum(list(countries.values())[15:]):,}")
    return grid


def _warnings(report) -> None:
    table = report.table
    if table.csv.encoding_note:
        output.warn(table.csv.encoding_note)
    if table.options.assume_consent and table.columns.consent is None:
        output.note(f"No consent column: consent assumed for every row ({table.options.assume_consent!r}).")
    compliance_warnings(table.plan)


def compliance_warnings(plan) -> None:
    """On stderr: a finding in the message itself, a missing opt-out instruction, link shorteners."""
    if plan is None:
        return
    from bulksend import compliance
    from bulksend.pipeline import template_findings

    for found in template_findings(plan):
        output.warn(
            f"the message itself has {found.word!r} ({found.category}): every row is content_blocked, and send "
            f"refuses it unless --allow-content {found.category}."
        )
    decided = plan.compliance
    if decided is None:
        return
    if decided.missing_optout:
        output.warn(
            "this marketing SMS does not say how to opt out and [compliance] footer is off: send will refuse it. "
            'Add "Reply STOP to opt out", set a footer, or use --purpose transactional.'
        )
    shortened = compliance.shortener_warning(decided)
    if shortened:
        output.warn(shortened)


def content_lines(table) -> list[str]:
    """The content findings, one line each: category, word, rows, an example row."""
    report = table.content_report()
    if not report or not report["findings"]:
        return []
    lines = [f"Content findings ({report['blocked']:,} rows content_blocked):"]
    for f in report["findings"]:
        where = "in the message itself" if f["source"] == "message" else "from a merge field"
        example = f", e.g. row {f['example_row']}" if f["example_row"] else ""
        lines.append(f"  {f['category']}: {f['word']!r} {where} · {_plural(f['rows'], 'row')}{example}")
    if report["allowed"]:
        lines.append(f"  allowed categories: {', '.join(report['allowed'])}")
    return lines


def footer_line(plan) -> str | None:
    decided = plan.compliance if plan is not None else None
    if decided is None or not decided.footer:
        return None
    return (f"Opt-out footer added to every message (marketing SMS): {decided.footer!r}; "
            "it is counted in the segments and credits above.")


def show_validation(report, *, json_output: bool, argv_path: Path, hints=None, values=None) -> None:
    """``hints`` (an Invocation) and ``values`` (the command's options) build the next commands."""
    from bulksend.hints import Invocation, reread

    hints = hints or Invocation()
    values = values or {}
    _warnings(report)
    if json_output:
        output.emit_json(report.as_json())
        return
    table = report.table
    out = output.stdout()
    out.print(_source_line(report), markup=False)
    out.print(
        f"[green]✓ {table.valid:,} can be messaged[/green]   "
        f"[{'red' if table.rejected else 'dim'}]✗ {table.rejected:,} rejected[/]"
    )
    if table.rejected:
        out.print()
        _show_rejects(out, report)
    lines = content_lines(table)
    if lines:
        out.print()
        for text in lines:
            out.print(text, markup=False, highlight=False)
    if table.valid:
        out.print()
        out.print(_country_table(report))
    written = []
    if report.rejects_written is not None:
        written.append(f"rejects: {_plural(report.rejects_written, 'row')}")
    if report.clean_written is not None:
        written.append(f"clean list: {_plural(report.clean_written, 'row')}")
    if written:
        out.print("\nWrote " + ", ".join(written) + ".", markup=False)
    out.print()
    listed, first = reread(argv_path)
    if table.rejected and report.rejects_written is None:
        out.print(f"Next: {first}list every reject with  {hints.validate_rejects(listed, values)}", markup=False)
    out.print(f"Next: {first}price a message with  {hints.estimate(listed, values)}", markup=False)


def quiet_hours_line(quiet) -> str:
    """One line: how many rows quiet hours would hold back if the send started now, and until when."""
    when = f"{quiet.at:%Y-%m-%d %H:%M} UTC"
    if not quiet.waiting:
        line = f"Quiet hours ({quiet.range}, each recipient's own zone): sent at {when}, no row would wait."
    else:
        first, last = (f"{d:%Y-%m-%d %H:%M} UTC" for d in (quiet.first_due, quiet.last_due))
        span = first if first == last else f"{first} to {last}"
        line = (f"Quiet hours ({quiet.range}, each recipient's own zone): sent at {when}, "
                f"{_plural(quiet.waiting, 'row')} would wait until {span}.")
    if quiet.no_shared_hours:
        line += f" {_plural(quiet.no_shared_hours, 'row')}: zones with no common allowed hour."
    return line


def show_estimate(estimate, *, json_output: bool, argv_path: Path, hints=None, values=None) -> None:
    from rich.table import Table

    from bulksend.hints import Invocation, reread

    hints = hints or Invocation()
    values = values or {}
    report = estimate.report
    _warnings(report)
    if json_output:
        output.emit_json(estimate.as_json())
        return
    table = report.table
    out = output.stdout()
    out.print(_source_line(report), markup=False)
    unit = "segments" if estimate.channel == "sms" else "messages"
    out.print(
        f"[bold]{estimate.recipients:,}[/bold] recipients · [bold]{estimate.messages:,}[/bold] {estimate.channel} "
        f"messages · [bold]{estimate.segments:,}[/bold] {unit} · [bold]{estimate.credits:,} credits[/bold]"
    )
    if table.rejected:
        reasons = ", ".join(f"{code} {count:,}" for code, count in table.reasons().items())
        out.print(f"[red]✗ {table.rejected:,} rejected[/red] ({reasons})")
    if estimate.channel == "sms" and estimate.recipients:
        split = Table(title="Messages by encoding and length", title_justify="left", show_edge=False, pad_edge=False)
        split.add_column("")
        split.add_column("messages", justify="right")
        for name, count in estimate.encodings.items():
            split.add_row(name, f"{count:,}")
        for segments, count in estimate.by_segments.items():
            split.add_row(f"{_plural(segments, 'segment')}", f"{count:,}")
        out.print()
        out.print(split)
    if report.previews:
        out.print()
        for text in preview_lines(report.previews):
            out.print(text, markup=False, highlight=False)
    footer = footer_line(table.plan)
    if footer:
        out.print()
        out.print(footer, markup=False, highlight=False)
    lines = content_lines(table)
    if lines:
        out.print()
        for text in lines:
            out.print(text, markup=False, highlight=False)
    if estimate.most_expensive:
        costly = Table(title="Most expensive rows", title_justify="left", show_edge=False, pad_edge=False)
        for column in ("row", "number", unit, "credits"):
            costly.add_column(column, justify="right" if column != "number" else "left")
        for row in estimate.most_expensive:
            costly.add_row(str(row.row), row.e164, str(row.segments), str(row.credits))
        out.print()
        out.print(costly)
    if table.rejected and report.examples:
        out.print()
        _show_rejects(out, report)
    out.print()
    if estimate.channel == "sms":
        if estimate.smart_encoding:
            out.print(
                f"Smart encoding saved {_plural(estimate.smart_segments_delta, 'segment')} "
                f"({_plural(estimate.smart_credits_delta, 'credit')}).",
                markup=False,
            )
        elif estimate.smart_segments_delta:
            out.print(
                f"--smart-encoding would save {_plural(estimate.smart_segments_delta, 'segment')} "
                f"({_plural(estimate.smart_credits_delta, 'credit')}) by replacing look-alike characters.",
                markup=False,
            )
    quiet = estimate.quiet
    if quiet is not None:
        out.print(quiet_hours_line(quiet), markup=False)
    if estimate.details_written is not None:
        out.print(f"Wrote details: {_plural(estimate.details_written, 'row')}.", markup=False)
    if estimate.channel == "whatsapp":
        # A bare CSV cannot carry the approved template that business-initiated WhatsApp messages need.
        out.print(
            "Next: name the approved template in a campaign file ([whatsapp] template = …; see docs/sending.md), "
            f"then send that file; see  {hints.help('send')}",
            markup=False,
        )
    else:
        listed, first = reread(argv_path)
        out.print(f"Next: {first}send it with  {hints.send(listed, values)}", markup=False)
