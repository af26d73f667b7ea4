"""Option aliases shared by several commands, so that every command spells them the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

JsonOutput = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout instead of tables.")]
CsvPath = Annotated[Path, typer.Argument(help="The recipient CSV file.", show_default=False)]
Encoding = Annotated[
    str | None,
    typer.Option("--encoding", help="Text encoding of the CSV (default: UTF-8, falling back to cp1252)."),
]
Delimiter = Annotated[
    str | None, typer.Option("--delimiter", help="Field delimiter (default: sniffed among , ; tab |).")
]
PhoneColumn = Annotated[str | None, typer.Option("--phone-column", help="Column holding the phone numbers.")]
ConsentColumn = Annotated[str | None, typer.Option("--consent-column", help="Column holding the consent value.")]
AssumeConsent = Annotated[
    str | None,
    typer.Option(
        "--assume-consent",
        metavar="WHY",
        help="Accept a file without a consent column; WHY is the attestation stored with the campaign.",
    ),
]
Region = Annotated[
    str | None,
    typer.Option("--region", help="ISO country code for numbers written without an international prefix."),
]
Countries = Annotated[
    str | None,
    typer.Option("--countries", help="Comma-separated ISO codes; numbers elsewhere are rejected."),
]
AllowLandline = Annotated[
    bool, typer.Option("--allow-landline", help="Accept numbers that cannot receive SMS (fixed line, toll free…).")
]
Channel = Annotated[str, typer.Option("--channel", help="sms or whatsapp.")]
Message = Annotated[str | None, typer.Option("--message", "-m", help="The message text, with {merge} fields.")]
TemplateFile = Annotated[Path | None, typer.Option("--template", "-t", help="A file holding the message text (UTF-8).")]
MaxSegments = Annotated[
    int | None, typer.Option("--max-segments", min=1, help="Reject messages longer than this many segments (10).")
]
SmartEncoding = Annotated[
    bool, typer.Option("--smart-encoding", help="Replace look-alike characters (curly quotes…) with GSM ones.")
]
Purpose = Annotated[
    str | None,
    typer.Option("--purpose", help="marketing (default: an SMS must say how to opt out) or transactional."),
]
AllowContent = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-content",
        metavar="CATEGORY",
        help="Send despite content findings of this category (profanity, hate, violence, sexual, illegal, deny); "
        "repeatable.",
    ),
]
Rates = Annotated[
    Path | None, typer.Option("--rates", help="Rate card CSV: country,channel,credits (* = any country).")
]
QuietHours = Annotated[
    str | None,
    typer.Option("--quiet-hours", metavar="HH:MM-HH:MM|off",
                 help="Hours in each recipient's own zone when nothing is sent "
                 "(default: \\[compliance] quiet_hours, else 21:00-08:00)."),
]
FrequencyCap = Annotated[
    str | None,
    typer.Option("--frequency-cap", metavar="N/WINDOW|off",
                 help="At most N messages per number and channel per window, across campaigns (like 2/24h)."),
]
