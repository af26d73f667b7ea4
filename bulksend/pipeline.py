"""The validate and estimate jobs, end to end: options checked, opt-out list loaded, files written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bulksend.config import Config
from bulksend.errors import InputError
from bulksend.recipients import (
    CHANNELS,
    MessagePlan,
    ValidationOptions,
    ValidationReport,
    check_region,
    parse_countries,
    validate_file,
)


def read_options(
    *,
    phone_column: str | None = None,
    consent_column: str | None = None,
    assume_consent: str | None = None,
    region: str | None = None,
    countries: str | None = None,
    allow_landline: bool = False,
    channel: str = "sms",
    encoding: str | None = None,
    delimiter: str | None = None,
) -> ValidationOptions:
    """Check the flags that shape how a list is read, before any file is opened."""
    channel = channel.strip().lower()
    if channel not in CHANNELS:
        raise InputError(f"--channel {channel!r}: choose sms or whatsapp.")
    if assume_consent is not None and not assume_consent.strip():
        raise InputError('--assume-consent needs the reason, for example --assume-consent "customers of record, T&C 4.2".')
    return ValidationOptions(
        phone_column=phone_column,
        consent_column=consent_column,
        assume_consent=assume_consent.strip() if assume_consent else None,
        region=check_region(region),
        countries=parse_countries(countries),
        allow_landline=allow_landline,
        channel=channel,
        encoding=encoding,
        delimiter=delimiter,
    )


def read_message(message: str | None, template: Path | None) -> tuple[str, str]:
    """The message text and where it came from (for error messages)."""
    if (message is None) == (template is None):
        raise InputError("give the message with either --message TEXT or --template FILE (exactly one).")
    if message is not None:
        return message, "--message"
    assert template is not None
    from bulksend.files import read_small

    try:
        text = read_small(template, "the template").decode("utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{template}: no such template file.", hint="Check the path given to --template.") from None
    except IsADirectoryError:
        raise InputError(f"{template}: is a directory, not a template file.") from None
    except UnicodeDecodeError:
        raise InputError(f"{template}: the template is not UTF-8 text.", hint="Save it as UTF-8.") from None
    except OSError as exc:
        raise InputError(f"{template}: cannot be read ({exc.strerror}).") from None
    # An editor's final newline is not part of the message.
    return text.rstrip("\r\n"), str(template)


def read_plan(
    *,
    message: str | None,
    template: Path | None,
    rates: Path | None,
    max_segments: int = 10,
    smart_encoding: bool = False,
    category: str | None = None,
    config: Config | None = None,
    channel: str = "sms",
    purpose: str | None = None,
    allow_content: tuple[str, ...] | list[str] = (),
) -> MessagePlan:
    """The message, priced; with ``config`` also checked (content) and given its opt-out footer (compliance)."""
    from bulksend.pricing import RateCard
    from bulksend.templates import Template

    from bulksend.pricing import WHATSAPP_CATEGORIES

    from bulksend.schema import MAX_SEGMENTS

    problem = MAX_SEGMENTS.problem(max_segments)
    if problem is not None:
        raise InputError(f"--max-segments ({MAX_SEGMENTS.what}) {problem}.")
    if category is not None and category not in WHATSAPP_CATEGORIES:
        raise InputError(f"category {category!r}: choose one of {', '.join(sorted(WHATSAPP_CATEGORIES))}.")
    text, origin = read_message(message, template)
    lexicon = decided = None
    if config is not None:
        from bulksend import compliance
        from bulksend.config import CONFIG_FILE
        from bulksend.content import check_categories, lexicon_from_config

        purpose = compliance.check_purpose(purpose)
        allowed = check_categories(allow_content)
        lexicon = lexicon_from_config(config.content, allowed, f"{config.home / CONFIG_FILE} [content]")
        Template.parse(text, origin=origin)  # syntax errors point into the text as written
        text, decided = compliance.apply(text, channel=channel, purpose=purpose, section=config.compliance)
    parsed = Template.parse(text, origin=origin)
    card = RateCard.load(rates) if rates is not None else RateCard.default()
    return MessagePlan(
        template=parsed, rates=card, max_segments=max_segments, smart_encoding=smart_encoding, category=category,
        lexicon=lexicon, compliance=decided,
    )


def template_findings(plan: MessagePlan) -> list:
    """Content findings in the message's own text (the template, its defaults and any footer)."""
    if plan.lexicon is None:
        return []
    from bulksend.content import TemplateCheck

    fields = list({name.strip().casefold(): name for name in plan.template.fields}.values())
    return TemplateCheck(plan.lexicon, plan.template.bind(fields)).template_findings


def run_validation(
    config: Config,
    path: Path,
    options: ValidationOptions,
    *,
    rejects: Path | None = None,
    clean: Path | None = None,
    examples: bool = False,
    plan: MessagePlan | None = None,
    progress: Callable[[int], None] | None = None,
    previews: bool = False,
    capped: dict[str, str] | None = None,
) -> ValidationReport:
    from bulksend.config import CONFIG_FILE
    from bulksend.consent import words_from_config
    from bulksend.files import refuse_overwrite
    from bulksend.suppression import load_suppressed

    refuse_overwrite({"--rejects": rejects, "--clean": clean}, [path])
    words = words_from_config(config.consent, f"{config.home / CONFIG_FILE} [consent]")
    return validate_file(
        path,
        options,
        default_region=config.default_region,
        suppressed=load_suppressed(config),
        rejects=rejects,
        clean=clean,
        examples_per_reason=3 if examples else 0,
        plan=plan,
        progress=progress,
        consent_words=words,
        previews=previews,
        capped=capped,
    )


def run_estimate(
    config: Config,
    path: Path,
    options: ValidationOptions,
    plan: MessagePlan,
    *,
    details: Path | None = None,
    examples: bool = False,
    progress: Callable[[int], None] | None = None,
    inputs: tuple[Path | None, ...] = (),
    schedule: dict | None = None,
):
    """Validate, render and price; ``inputs`` are the other files read (template, rate card), never overwritten.

    ``schedule``: the ``--quiet-hours`` / ``--frequency-cap`` flags (None: not given). The rules a ``send``
    would follow (flags, else config.toml's ``[compliance]``, else the defaults) apply as in its pass one:
    numbers at the frequency cap in the ledger (read only) are rejected ``frequency_capped``, and the
    accepted rows are counted that would wait for quiet hours if sent now.
    """
    from datetime import datetime, timezone

    from bulksend.estimate import quiet_hours_summary, summarize
    from bulksend.files import refuse_overwrite
    from bulksend.recipients import write_details
    from bulksend.schedule import configured_rules

    refuse_overwrite({"--details": details}, [path, *inputs])
    now = datetime.now(timezone.utc)  # one clock read: the cap and quiet hours are judged at the same instant
    rules = configured_rules(config, dict(schedule or {}), None, now)
    capped = recent_capped(config, rules.cap, options.channel, now) if rules.cap is not None else None
    report = run_validation(config, path, options, plan=plan, examples=examples, progress=progress, previews=True,
                            capped=capped)
    estimate = summarize(report)
    estimate.rules = rules
    estimate.quiet = quiet_hours_summary(report.table, rules, now)
    if details is not None:
        estimate.details_written = write_details(report.table, details)
    return estimate


def recent_capped(config: Config, cap, channel: str, now) -> dict[str, str]:
    """Numbers at the frequency cap now, from the ledger opened read-only (none without a ledger)."""
    from bulksend.ledger_guard import open_for_read
    from bulksend.schedule import capped_numbers

    ledger = open_for_read(config)
    if ledger is None:
        return {}
    with ledger:
        return capped_numbers(cap, channel, ledger.recent_sends(None, channel, now - cap.window), now)
