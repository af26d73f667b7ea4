"""Shell completion is offered (`--install-completion`, `--show-completion`) and completes command names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def test_the_root_help_offers_completion(cli):
    result = cli("--help")
    assert result.exit_code == 0
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout


def test_bash_completion_completes_commands(home):
    env = {**os.environ, "_BULKSEND_COMPLETE": "complete_bash", "COMP_WORDS": "bulksend config ", "COMP_CWORD": "2"}
    # The console script beside the interpreter (bulksend.exe on Windows): completion is keyed on its name.
    script = shutil.which("bulksend", path=str(Path(sys.executable).parent))
    assert script, "the bulksend console script is installed with the package"
    done = subprocess.run([script], env=env, capture_output=True, text=True)
    assert (done.returncode, done.stdout.split()) == (0, ["show"])
