"""`bulksend estimate`: what a message to a recipient list costs, in segments and credits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bulksend.commands import options as opt


def estimate(
    ctx: typer.Context,
    csv_path: opt.CsvPath,
    message: opt.Message = None,
    template: opt.TemplateFile = None,
    channel: opt.Channel = "sms",
    max_segments: opt.MaxSegments = None,
    smart_encoding: opt.SmartEncoding = False,
    category: Annotated[
        str | None,
        typer.Option("--category", help="WhatsApp pricing category: marketing, utility, authentication or service."),
    ] = None,
    rates: opt.Rates = None,
    purpose: opt.Purpose = None,
    allow_content: opt.AllowContent = None,
    quiet_hours: opt.QuietHours = None,
    frequency_cap: opt.FrequencyCap = None,
    details: Annotated[
        Path | None, typer.Option("--details", help="Write one row per recipient with its segments and credits.")
    ] = None,
    phone_column: opt.PhoneColumn = None,
    consent_column: opt.ConsentColumn = None,
    assume_consent: opt.AssumeConsent = None,
    region: opt.Region = None,
    countries: opt.Countries = None,
    allow_landline: opt.AllowLandline = False,
    encoding: opt.Encoding = None,
    delimiter: opt.Delimiter = None,
    json_output: opt.JsonOutput = False,
) -> None:
    """Validate a recipient CSV, render the message for every row, and price it in credits.

    Priced as `send` would send it now: numbers at the frequency cap (config.toml \\[compliance] frequency_cap, or
    --frequency-cap, counted in the ledger, which is only read) are rejected frequency_capped, and the
    rows quiet hours would hold back (\\[compliance] quiet_hours, or --quiet-hours, 21:00-08:00 by default,
    in each recipient's own zone) are counted with when they would go.

    Example: bulksend estimate recipients.csv --template spring.txt --rates rates.csv
    """
    from bulksend.commands.render import show_estimate
    from bulksend.pipeline import read_options, read_plan, run_estimate

    options = read_options(
        phone_column=phone_column,
        consent_column=consent_column,
        assume_consent=assume_consent,
        region=region,
        countries=countries,
        allow_landline=allow_landline,
        channel=channel,
        encoding=encoding,
        delimiter=delimiter,
    )
    config = ctx.obj.config()
    plan = read_plan(message=message, template=template, rates=rates, max_segments=max_segments or 10,
                     smart_encoding=smart_encoding, category=category, config=config, channel=options.channel,
                     purpose=purpose, allow_content=allow_content or ())
    result = run_estimate(config, csv_path, options, plan, details=details, examples=not json_output,
                          inputs=(template, rates),
                          schedule={"quiet_hours": quiet_hours, "frequency_cap": frequency_cap})
    show_estimate(result, json_output=json_output, argv_path=csv_path, hints=ctx.obj.invocation, values=ctx.params)
