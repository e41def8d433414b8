"""Read Server-Sent Events off a live HTTP response as they arrive, with arrival times."""
import json
import time


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
