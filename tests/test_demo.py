"""`make demo` (deploy/demo.sh) as a newcomer runs it, twice in a row: the second run starts
from a fresh demo database and shows no error either; the edit, the regeneration and the
branch switch it shows come out as the message tree says."""
import os
import shutil
import subprocess

import pytest

from .servers import PROJECT, free_port

pytestmark = pytest.mark.slow


def test_the_demo_runs_twice_in_a_row_without_an_error(tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("deploy/demo.sh needs curl, which is not installed")
    # A newcomer's shell: no database or Redis of the test run's own.
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET_KEY")}
    environment.update(DEMO_PORT=str(free_port()), SIM_PORT=str(free_port()),
                       DEMO_DIR=str(tmp_path))
    for run in (1, 2):
        done = subprocess.run(["bash", "deploy/demo.sh"], cwd=PROJECT, env=environment,
                              capture_output=True, text=True, timeout=300)
        shown = done.stdout + done.stderr
        assert done.returncode == 0, f"run {run}:\n{shown}"
        assert '"success":false' not in shown and "Traceback" not in shown, f"run {run}:\n{shown}"
        assert "make demo:" not in shown and "curl:" not in shown, f"run {run}:\n{shown}"
        assert '"username":"demo"' in shown, f"run {run}: the demo user was not registered"
        assert "event: done" in shown and "tool calculator" in shown, f"run {run}:\n{shown}"
        # The edit and the regeneration are second versions; the switch shows the first again.
        edited, switched = shown.split("# back to the first version")
        assert "user <2/2>" in edited and "assistant <2/2>" in edited, f"run {run}:\n{shown}"
        assert "user <1/2>" in switched and "6 乘以 7" in switched, f"run {run}:\n{shown}"
