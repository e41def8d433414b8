"""The floor for relaying: a gevent WSGI server that, per request, streams from the GLM
simulator over a plain socket and re-emits each chunk as an SSE event. No Flask, no database,
no SDK: the service's CPU per chunk is read against this one's.

    python -m bench.bare_relay --port 0 --upstream 127.0.0.1:9100

POST /stream {"content": "..."} answers `event: text` per chunk, then `event: done` with
`{"assistant_message": {"content": <all text>}}`, like ChatAPI.
"""
import argparse
import json

from gevent import pywsgi, socket

from .procstat import raise_open_files_limit

UPSTREAM_PATH = "/api/paas/v4/chat/completions"


def event(kind, data):
    return (f"event: {kind}\ndata: "
            f"{json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n").encode()


def open_upstream(address, content):
    payload = json.dumps({"model": "glm-4.6", "stream": True,
                          "messages": [{"role": "user", "content": content}]}).encode()
    upstream = socket.create_connection(address)
    # HTTP/1.0: the simulator then streams without chunked framing and closes at the end.
    upstream.sendall(f"POST {UPSTREAM_PATH} HTTP/1.0\r\nHost: {address[0]}:{address[1]}\r\n"
                     f"Authorization: Bearer bench\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
    return upstream


def relay(upstream):
    text = []
    with upstream, upstream.makefile("rb") as lines:
        for line in lines:
            if line == b"\r\n":
                break
        for line in lines:
            if not line.startswith(b"data: "):
                continue
            data = line[6:].strip()
            if data == b"[DONE]":
                break
            delta = json.loads(data)["choices"][0]["delta"].get("content")
            if delta:
                text.append(delta)
                yield event("text", {"delta": delta})
    yield event("done", {"assistant_message": {"content": "".join(text)}})


def make_app(address):
    def app(environ, start_response):
        body = json.loads(environ["wsgi.input"].read())
        upstream = open_upstream(address, body["content"])
        start_response("200 OK", [("Content-Type", "text/event-stream"),
                                  ("Cache-Control", "no-cache")])
        return relay(upstream)
    return app


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the GLM simulator")
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    raise_open_files_limit()
    server = pywsgi.WSGIServer(("127.0.0.1", args.port), make_app((host, int(port))),
                               log=None, backlog=4096)
    server.start()
    print(f"listening on http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
