"""README's first command: examples/demo.sh behaves the same in any time zone, at any hour (quiet hours are on
by default, and the demo must not depend on when it runs), and tells a new user how a deferral looks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.sh"
BULKSEND = Path(sys.executable).parent / "bulksend"


@pytest.mark.skipif(not BULKSEND.exists(), reason="the bulksend script is not installed next to this Python")
@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "America/Adak"])
def test_the_demo_sends_everything_and_explains_quiet_hours_in_any_zone(tmp_path, zone):
    env = {**os.environ, "TZ": zone, "LC_ALL": "C", "TMPDIR": str(tmp_path)}
    env.pop("BULKSEND_HOME", None)
    result = subprocess.run(["sh", str(DEMO), str(BULKSEND)], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Campaign 'spring-sale' (#1, sms via outbox): done\n  sent 32\n" in out
    assert "Campaign 'spring-sale' is done: nothing left to send." in out
    assert "sms: 941 available, 0 held" in out and "\nconsistent\n" in out
    assert "ends with 'N messages wait until ... UTC' (exit 0, credits held);" in out
    assert f"Dates are days in the ledger's time zone, {zone}." in out
    homes = list(tmp_path.glob("bulksend-demo.*"))
    assert len(homes) == 1 and len((homes[0] / "outbox" / "spring-sale.jsonl").read_text().splitlines()) == 32
