"""Quiet hours, send times and frequency caps as settings: config.toml, campaign files and send flags."""

from __future__ import annotations

import pytest

from sendhelpers import write_campaign


@pytest.fixture
def funded(cli):
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    return cli


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--quiet-hours", "25:00-08:00"],
         "Error: --quiet-hours: the start '25:00' is not a time of day: use HH:MM, 00:00 to 23:59."),
        (["--quiet-hours", "08:00-08:00"],
         "Error: --quiet-hours: '08:00-08:00' starts and ends at the same time, which leaves no hour to send in."),
        (["--at", "09:00"], "Error: --at: '09:00' is a time of day without a date or zone."),
        (["--at", "2026-12-01T09:00"],
         "Error: --at: '2026-12-01T09:00' has no offset, so it could mean any of 24 instants."),
        (["--frequency-cap", "2 a day"],
         "Error: --frequency-cap: '2 a day' is not a cap: use N/WINDOW with s, m, h, d or w, like \"2/24h\" or "
         "\"3/7d\", or \"off\"."),
    ],
)
def test_bad_schedule_flags_exit_2_before_anything_happens(funded, home, tmp_path, flags, message):
    campaign, _ = write_campaign(tmp_path, "spring", 2)
    result = funded("send", campaign, "--yes", *flags)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == message
    assert not (home / "outbox" / "spring.jsonl").exists()


@pytest.mark.parametrize(
    "extra, key, message",
    [
        ({"quiet_hours": "9pm-8am"}, "quiet_hours",
         "quiet_hours: the start '9pm' is not a time of day: use HH:MM, 00:00 to 23:59."),
        ({"send_at": "09:00"}, "send_at", "send_at: '09:00' is a time of day without a date or zone."),
        ({"frequency_cap": "0/24h"}, "frequency_cap",
         "frequency_cap: '0/24h': the number of messages must be from 1 to 10,000."),
        ({"local": "yes"}, "local", "local (send_at is a wall time in each recipient's own zone) must be true or false"),
    ],
)
def test_bad_schedule_keys_in_a_campaign_file_name_the_file_and_key(funded, tmp_path, extra, key, message):
    campaign, _ = write_campaign(tmp_path, "spring", 2, **extra)
    result = funded("send", campaign, "--yes")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {campaign}: {message}")


def test_a_local_send_time_in_the_file_may_get_local_from_the_flag(funded, tmp_path):
    campaign, _ = write_campaign(tmp_path, "spring", 2, send_at="09:00")
    result = funded("send", campaign, "--yes", "--dry-run", "--local")
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize(
    "line, message",
    [
        ('quiet_hours = "9pm-8am"',
         'compliance.quiet_hours (local hours in which nothing is sent) must be "HH:MM-HH:MM" (like "21:00-08:00"), '
         '"off", or true/false, not \'9pm-8am\'.'),
        ('frequency_cap = 2',
         'compliance.frequency_cap (the most messages a number gets per window) must be N/WINDOW (like "2/24h", '
         'units s m h d w), "off", or false, not 2.'),
    ],
)
def test_bad_compliance_settings_in_config_exit_6(cli, home, line, message):
    (home / "config.toml").write_text(f"[compliance]\n{line}\n")
    result = cli("balance")
    assert result.exit_code == 6
    assert result.stderr.splitlines()[0] == f"Error: {home / 'config.toml'}: {message}"


def test_good_compliance_settings_are_accepted(cli, home):
    (home / "config.toml").write_text('[compliance]\nquiet_hours = "20:00-09:00"\nfrequency_cap = "2/24h"\n')
    assert cli("balance").exit_code == 0
    (home / "config.toml").write_text("[compliance]\nquiet_hours = false\nfrequency_cap = \"off\"\n")
    assert cli("balance").exit_code == 0
