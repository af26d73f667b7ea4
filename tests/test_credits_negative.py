"""`credits topup -5` reaches the command and is refused as a bad amount, not as an unknown option."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    "args",
    [("-5", "--channel", "sms"), ("--channel", "sms", "-5"), ("0", "--channel", "whatsapp")],
    ids=["before_the_option", "after_the_option", "zero"],
)
def test_a_topup_that_is_not_positive_says_so(cli, home, args):
    result = cli("credits", "topup", *args)
    amount = next(a for a in args if a.lstrip("-").isdigit())
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: the amount must be a positive whole number of credits; {amount} is not. Nothing recorded.\n"
    )
    assert not (home / "ledger.db").exists()


def test_a_mistyped_option_is_still_named(cli):
    result = cli("credits", "topup", "1000", "--chanel", "sms")
    assert result.exit_code == 2
    assert "No such option: --chanel" in result.stderr
