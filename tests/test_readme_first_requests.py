"""The README's "First requests" run as written: its ```sh blocks, in order, in one bash, against
a real gunicorn on the GLM simulator. A change to the README is tested as it reads, so the
examples cannot drift from the API."""
import json
import os
import re
import shutil
import subprocess

import pytest

from .conftest import gunicorn_env
from .servers import PROJECT, gunicorn

pytestmark = pytest.mark.slow

SECTION = "## First requests"
MARKER = "@@block-ended"


def readme_blocks():
    """The ```sh blocks of the README's "First requests" section, in order."""
    readme = (PROJECT / "README.md").read_text()
    start = readme.index(SECTION + "\n")
    end = readme.find("\n## ", start + len(SECTION))
    section = readme[start:end if end != -1 else None]
    return re.findall(r"^```sh\n(.*?)^```$", section, flags=re.S | re.M)


def run_blocks(blocks, api):
    """Each block's (output, exit status of its last command), from one bash session, so the
    variables one block sets (TOKEN, CONVERSATION) reach the next, as in a reader's shell."""
    script = "".join(f"{block}printf '\\n{MARKER} %d\\n' $?\n" for block in blocks)
    environment = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
                   "LANG": "C.UTF-8", "API": api}
    done = subprocess.run(["bash", "--noprofile", "--norc", "-c", script], env=environment,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    parts = re.split(rf"\n{MARKER} (\d+)\n", done.stdout)
    outputs = [(parts[i].strip("\n"), int(parts[i + 1])) for i in range(0, len(parts) - 1, 2)]
    assert len(outputs) == len(blocks), done.stdout
    return outputs


def json_lines(output):
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def succeeded(answer):
    assert answer["success"] is True, answer
    return answer["data"]


def sse_events(output):
    events = []
    for record in output.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in record.splitlines()
                     if not line.startswith(":"))
        if lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


def check_setup(output, _state):
    assert output == ""


def check_register(output, state):
    [answer] = json_lines(output)
    assert succeeded(answer)["username"] == "alice"


def check_login(output, state):
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", output), output


def check_create_conversation(output, state):
    assert re.fullmatch(r"conv_[\w-]+", output), output
    state["conversation"] = output


def check_send(output, state):
    [answer] = json_lines(output)
    assistant = succeeded(answer)["assistant_message"]
    assert assistant["status"] == "completed" and assistant["content"]


def check_stream(output, state):
    events = sse_events(output)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and "text" in kinds, kinds
    assert events[-1][1]["assistant_message"]["status"] == "completed"


def check_lists(output, state):
    messages, conversations = json_lines(output)
    assert [m["role"] for m in succeeded(messages)["items"]] == [
        "user", "assistant", "user", "assistant"]
    assert [c["id"] for c in succeeded(conversations)["items"]] == [state["conversation"]]


def check_tool(output, state):
    [answer] = json_lines(output)
    run = succeeded(answer)
    assert run["tool"] == "calculator" and run["result"]["result"] == 42, run


# What each block does, told by what it sends; a new block needs a check here.
CHECKS = [
    (r"^API=", check_setup),
    (r"/auth/register", check_register),
    (r"/auth/login", check_login),
    (r"-X POST \"\$API/conversations/\"", check_create_conversation),
    (r"-X POST \"\$API/messages/\"", check_send),
    (r"\$API/messages/stream", check_stream),
    (r"\"\$API/messages/\$CONVERSATION\".*\n.*\"\$API/conversations/\"", check_lists),
    (r"/tools/calculator/execute", check_tool),
]


@pytest.fixture
def service(app, database_url, glm_simulator):
    glm_simulator.reset()
    # The suite registers from 127.0.0.1 more than an hour's allowance in a shared Redis.
    env = gunicorn_env(database_url, glm_simulator, REGISTER_LIMIT="off")
    with gunicorn(env, workers=1) as base:
        yield base


def test_the_readme_first_requests_run_as_written(service):
    for tool in ("curl", "python3"):
        if shutil.which(tool) is None:
            pytest.skip(f"the README's examples need {tool}, which is not installed")
    blocks = readme_blocks()
    checks = []
    for block in blocks:
        matching = [check for pattern, check in CHECKS if re.search(pattern, block, re.M)]
        assert len(matching) == 1, f"no single check for this README block:\n{block}"
        checks.append(matching[0])
    assert set(checks) == {check for _, check in CHECKS}, "a README example went missing"
    state = {}
    for block, check, (output, status) in zip(blocks, checks, run_blocks(blocks, f"{service}/api")):
        assert status == 0, f"{block}\n-> exit {status}:\n{output}"
        check(output, state)
