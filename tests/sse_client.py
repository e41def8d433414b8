"""Read Server-Sent Events off a live HTTP response as they arrive, with arrival times."""
import json
import time

import requests


def events(response):
    """Yield (kind, data, seconds since the first call) per event; a comment line such as
    `: ping` comes as ("comment", text, t)."""
    started = time.perf_counter()
    kind = None
    for raw in response.iter_lines(chunk_size=1, decode_unicode=True):
        line = raw if isinstance(raw, str) else raw.decode()
        now = time.perf_counter() - started
        if line.startswith(":"):
            yield "comment", line[1:].strip(), now
        elif line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield kind, json.loads(line.removeprefix("data: ")), now
            kind = None


def open_stream(base, headers, conversation_id, content):
    return requests.post(f"{base}/api/messages/stream", stream=True, timeout=60,
                         headers=headers,
                         json={"conversation_id": conversation_id, "content": content})


def text_arriving_as_written(timeline):
    """For `[[chunks:10]][[delay:300]]`: the simulator sends its last chunk ~3 s in, so the
    first text must reach the client ~0.3 s in, and the stream end ~2.7 s later. The text."""
    first_text = next(t for kind, _, t in timeline if kind == "text")
    done_at = timeline[-1][2]
    assert timeline[-1][0] == "done"
    assert first_text < 1.0 and done_at - first_text > 2.0, (first_text, done_at)
    text = "".join(data["delta"] for kind, data, _ in timeline if kind == "text")
    assert text == timeline[-1][1]["assistant_message"]["content"]
    return text
