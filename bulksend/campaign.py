"""Campaigns, by the names they had before the split: re-exported from the three modules that own them.

``campaign_file`` (the campaign file and the spec), ``campaign_run`` (a run: prepare, queue, execute, dry run,
cancel, reconcile) and ``campaign_status`` (where a campaign stands, what a run did). Import from those; this
module only keeps older imports working. Patch a name where it is used (e.g. ``bulksend.campaign_run``), not here.
"""

from bulksend.campaign_file import (
    CAMPAIGN_KEYS,
    SCHEDULE_FLAGS,
    WHATSAPP_TABLE,
    CampaignSpec,
    RowParams,
    RunOptions,
    build_spec,
    check_name,
    fingerprint,
    is_campaign_file,
    read_campaign_file,
    send_one_spec,
)
from bulksend.campaign_run import (
    DEFAULT_PROVIDER,
    QUEUE_CHUNK,
    Prepared,
    cancel_campaign,
    checked_sender,
    dry_run,
    dry_run_path,
    engine_settings,
    execute,
    open_campaign_provider,
    prepare_resume,
    prepare_send,
    reconcile,
    send_rules,
    sleep_until_due,
    stop_on_signals,
)
from bulksend.campaign_status import (
    OPEN_STATES,
    CampaignStatus,
    CancelReport,
    DryRunReport,
    ReconcileReport,
    SendReport,
    every_state,
    find_campaign,
    list_campaigns,
    show_campaign,
    status_of,
)

_find = find_campaign  # the names other modules used before the split
_status = status_of

__all__ = [
    "CAMPAIGN_KEYS", "SCHEDULE_FLAGS", "WHATSAPP_TABLE", "CampaignSpec", "RowParams", "RunOptions", "build_spec",
    "check_name", "fingerprint", "is_campaign_file", "read_campaign_file", "send_one_spec",
    "DEFAULT_PROVIDER", "QUEUE_CHUNK", "Prepared", "cancel_campaign", "checked_sender", "dry_run", "dry_run_path",
    "engine_settings", "execute", "open_campaign_provider", "prepare_resume", "prepare_send", "reconcile",
    "send_rules", "sleep_until_due", "stop_on_signals",
    "OPEN_STATES", "CampaignStatus", "CancelReport", "DryRunReport", "ReconcileReport", "SendReport", "every_state",
    "find_campaign", "list_campaigns", "show_campaign", "status_of",
]
