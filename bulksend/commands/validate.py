"""`bulksend validate`: who on a recipient list can be messaged, and why the others cannot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bulksend.commands import options as opt


def validate(
    ctx: typer.Context,
    csv_path: opt.CsvPath,
    phone_column: opt.PhoneColumn = None,
    consent_column: opt.ConsentColumn = None,
    assume_consent: opt.AssumeConsent = None,
    region: opt.Region = None,
    countries: opt.Countries = None,
    allow_landline: opt.AllowLandline = False,
    channel: opt.Channel = "sms",
    encoding: opt.Encoding = None,
    delimiter: opt.Delimiter = None,
    message: opt.Message = None,
    template: opt.TemplateFile = None,
    purpose: opt.Purpose = None,
    allow_content: opt.AllowContent = None,
    rejects: Annotated[
        Path | None, typer.Option("--rejects", help="Write rejected rows (row, value, reason, detail) to this CSV.")
    ] = None,
    clean: Annotated[
        Path | None, typer.Option("--clean", help="Write accepted rows, plus an e164 column, to this CSV.")
    ] = None,
    json_output: opt.JsonOutput = False,
) -> None:
    """Check every number and consent value of a recipient CSV; report who can be messaged.

    With --message or --template, every row's message is rendered and checked too (merge fields, content,
    length).

    Example: bulksend validate recipients.csv --region GB --rejects rejects.csv
    """
    from bulksend.commands.render import show_validation
    from bulksend.pipeline import read_options, read_plan, run_validation

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
    plan = None
    if message is not None or template is not None:
        plan = read_plan(message=message, template=template, rates=None, config=config, channel=options.channel,
                         purpose=purpose, allow_content=allow_content or ())
    report = run_validation(
        config, csv_path, options, rejects=rejects, clean=clean, examples=not json_output, plan=plan
    )
    show_validation(report, json_output=json_output, argv_path=csv_path, hints=ctx.obj.invocation, values=ctx.params)
