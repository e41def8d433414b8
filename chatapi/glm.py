"""The only importer of zhipuai: one SDK client per worker process, and every SDK or transport
failure turned into the project's 502/503/504 errors (docs/GLM.md)."""
import json
import logging
import os
from dataclasses import dataclass

import httpx
from zhipuai import ZhipuAI
from zhipuai.core._constants import RAW_RESPONSE_HEADER
from zhipuai.core._errors import (APIAuthenticationError, APIConnectionError,
                                  APIReachLimitError, APIServerFlowExceedError, APIStatusError,
                                  APITimeoutError, ZhipuAIError)

from . import strict_json
from .errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from .glm_transport import GLMTransport

log = logging.getLogger(__name__)

# Asks the SDK for the HTTP response as it came, unparsed (the header also reaches GLM, which
# ignores it).
UNPARSED = {RAW_RESPONSE_HEADER: "true"}
# Far above any call's tokens (context windows are 200,000 at most): a count past it is no
# answer of GLM's, and a call's counts are stored in 32-bit columns (usage_records).
MAX_REPORTED_TOKENS = 10_000_000


def provider_details(error):
    """What the provider said, for the client's `error.details` (never our key or stack)."""
    details = {"provider_error": type(error).__name__}
    response = getattr(error, "response", None)
    if isinstance(error, APIStatusError) and response is not None:
        details["provider_status"] = response.status_code
        try:
            body = response.json().get("error") or {}
            details["provider_code"] = str(body.get("code", ""))
            details["provider_message"] = str(body.get("message", ""))[:500]
        except (ValueError, AttributeError):
            pass
    return details


def translate(error):
    """The ApiError a client sees for an SDK exception or a raw httpx error of a broken stream."""
    details = provider_details(error)
    if isinstance(error, (APITimeoutError, httpx.TimeoutException)):
        return UpstreamTimeout(details=details)
    if isinstance(error, (APIConnectionError, httpx.ConnectError)):
        return UpstreamUnavailable(details=details)
    if isinstance(error, (APIReachLimitError, APIServerFlowExceedError)):
        return UpstreamUnavailable(details=details)
    if isinstance(error, APIAuthenticationError):
        return UpstreamError(details=details)
    if isinstance(error, (ZhipuAIError, httpx.HTTPError)):
        return UpstreamError(details=details)
    raise error


class GLMClient:
    """Holds the SDK client of this process. It is made on first use, so under gunicorn (no
    preload) each worker makes its own after the fork, with a pool sized for its streams."""

    def __init__(self, config):
        self.api_key = config["ZHIPUAI_API_KEY"]
        self.base_url = config["GLM_BASE_URL"]
        self.max_retries = config["GLM_MAX_RETRIES"]
        self.timeout = httpx.Timeout(config["GLM_READ_TIMEOUT"],
                                     connect=config["GLM_CONNECT_TIMEOUT"])
        self.max_connections = config["GLM_MAX_CONNECTIONS"]
        self.transport = config["GLM_TRANSPORT"]
        self._sdk = None
        self._pid = None

    @property
    def sdk(self):
        if not self.api_key:
            raise UpstreamUnavailable(details={"provider_error": "ZHIPUAI_API_KEY is not set"})
        if self._sdk is None or self._pid != os.getpid():
            http_client = self.http_client()
            self._sdk = ZhipuAI(api_key=self.api_key, base_url=self.base_url,
                                timeout=self.timeout, max_retries=self.max_retries,
                                http_client=http_client)
            self._pid = os.getpid()
        return self._sdk

    def http_client(self):
        """The project's transport, or httpx's own (httpcore + h11) with a pool alike: as many
        kept-alive connections as answers may run at once."""
        if self.transport == "httptools":
            return httpx.Client(timeout=self.timeout,
                                transport=GLMTransport(self.max_connections))
        pool = httpx.Limits(max_connections=self.max_connections,
                            max_keepalive_connections=self.max_connections)
        return httpx.Client(timeout=self.timeout, limits=pool)

    def stream_chat(self, *, model, messages, temperature, max_tokens, thinking, tools=None):
        """Start a streamed completion. Errors before the stream (HTTP status, connection)
        raise here; errors during it raise from iterating the returned ChatStream."""
        # The messages and tools through extra_body, which the request's JSON takes as they
        # are: the SDK deep-copies its named arguments on every call, and the history and the
        # eleven tool schemas are the bulk of a request (~1 ms of CPU per answer). Its one
        # change to `messages`, to image parts, concerns no message of ours (text only).
        extra = {"messages": messages}
        if tools:
            extra.update(tools=tools, tool_choice="auto")
        request = {"model": model, "messages": None, "stream": True,
                   "temperature": temperature, "max_tokens": max_tokens,
                   "thinking": {"type": "enabled" if thinking else "disabled"},
                   "extra_body": extra}
        try:
            return ChatStream(self.sdk.chat.completions.create(**request))
        except (ZhipuAIError, httpx.HTTPError) as error:
            raise translate(error) from error

    def complete(self, *, model, messages, temperature, max_tokens, timeout):
        """A whole completion without thinking or tools: (its text, its usage as the provider
        reported it, or None). The SDK makes the request and raises its errors; the answer is
        read here from its HTTP response, unparsed by the SDK (its raw-response header): the
        SDK's parse makes a pydantic TypeAdapter per field and call, a third of the call's CPU
        (a title per conversation). The messages go as in stream_chat."""
        try:
            answer = self.sdk.chat.completions.create(
                model=model, messages=None, stream=False, temperature=temperature,
                max_tokens=max_tokens, thinking={"type": "disabled"}, timeout=timeout,
                extra_headers=UNPARSED, extra_body={"messages": messages})
            body = answer.http_response.content
        except (ZhipuAIError, httpx.HTTPError) as error:
            raise translate(error) from error
        return completion_of(body)

    def web_search(self, query, count, timeout):
        try:
            answer = self.sdk.web_search.web_search(search_engine="search_std",
                                                    search_query=query, count=count,
                                                    timeout=timeout)
        except (ZhipuAIError, httpx.HTTPError) as error:
            raise translate(error) from error
        return [{"title": item.title, "url": item.link, "snippet": item.content,
                 "published": item.publish_date}
                for item in (answer.search_result or [])][:count]


def completion_of(body):
    """(the text, the usage or None) of a completion's JSON body; 502 for any other shape."""
    try:
        # Not strict: a title is cleaned of what is not text (cleaned() drops a lone surrogate).
        completion = json.loads(body)
        text = text_of(completion["choices"][0]["message"].get("content") or "")
        usage = None if completion.get("usage") is None else usage_of(completion)
    except (ValueError, LookupError, AttributeError, TypeError, RecursionError) as error:
        raise UpstreamError(details={"provider_error": "malformed completion"}) from error
    return text, usage


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class ToolCallRequest:
    """One complete tool call; `arguments` is the model's JSON string, possibly invalid."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Finish:
    reason: str
    usage: dict


class ChatStream:
    """Typed events of one streamed completion. `close()` hangs up on the provider at once
    (leaving the loop alone would keep the upstream connection streaming until GC).

    The SDK makes the request and raises its errors; the chunks are then read straight off
    its HTTP response: the SDK's own iteration builds a pydantic model per chunk, ~15 times
    the cost of the JSON parse, and that is most of a worker's CPU per relayed chunk."""

    def __init__(self, sdk_stream):
        self._response = sdk_stream.response

    def close(self):
        self._response.close()

    def __iter__(self):
        calls = {}
        finish = None
        try:
            for chunk in chunks_of(self._response):
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    if delta.get("reasoning_content"):
                        yield ReasoningDelta(text_of(delta["reasoning_content"]))
                    if delta.get("content"):
                        yield TextDelta(text_of(delta["content"]))
                    for call in delta.get("tool_calls") or ():
                        merge_tool_call_fragment(calls, call)
                    if choice.get("finish_reason"):
                        finish = Finish(text_of(choice["finish_reason"]), usage_of(chunk))
            indexes = sorted(calls)
        except (ZhipuAIError, httpx.HTTPError) as error:
            raise translate(error) from error
        except (AttributeError, TypeError, ValueError) as error:
            # JSON shaped otherwise than GLM's chunks (`choices` holding no objects, a count
            # that is no number): an invalid answer from upstream, so 502 like any other.
            raise UpstreamError(details={"provider_error": "malformed stream chunk"}) from error
        finally:
            # Read to its end (chunks_of), a response hands its connection back to the pool;
            # cut short, this closes the connection now rather than whenever the GC runs.
            self._response.close()
        if finish is None:
            raise UpstreamError(details={"provider_error": "stream ended without finish_reason"})
        for index in indexes:
            call = calls[index]
            yield ToolCallRequest(call["id"] or f"call_{index}", call["name"], call["arguments"])
        yield finish


def lines_of(response):
    """The stream's lines as bytes, split here: httpx's iter_lines adds a text decoder and two
    more generator layers per chunk, on the hottest path of a worker."""
    pending = b""
    for received in response.iter_bytes():
        pending += received
        if b"\n" not in received:
            continue
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.rstrip(b"\r")
    if pending:
        yield pending.rstrip(b"\r")


def chunks_of(response):
    """The JSON chunks of GLM's event stream, up to `data: [DONE]`; an error the provider
    reports inside the stream raises like a broken stream (docs/GLM.md, Errors)."""
    event = None
    lines = lines_of(response)
    for line in lines:
        if line.startswith(b"event:"):
            event = line[6:].strip()
            continue
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data.startswith(b"[DONE]"):
            # The body's end (its last chunk) follows: read it, or the connection is not
            # kept alive and every answer opens a new one (a TLS handshake).
            for _ in lines:
                pass
            return
        try:
            chunk = strict_json.loads_replacing_surrogates(data)
        except (ValueError, RecursionError) as error:
            raise UpstreamError(details={"provider_error": "unreadable stream chunk"}) from error
        if isinstance(chunk, dict) and (chunk.get("error") or event == b"error"):
            error = chunk.get("error") if isinstance(chunk.get("error"), dict) else {}
            raise UpstreamError(details={"provider_error": "error inside the stream",
                                         "provider_code": str(error.get("code", "")),
                                         "provider_message": str(error.get("message", ""))})
        if isinstance(chunk, dict):
            yield chunk
        event = None


def text_of(value):
    """A field GLM sends as text; TypeError (a malformed chunk) for anything else, which would
    otherwise fail where the answer is streamed or stored."""
    if not isinstance(value, str):
        raise TypeError(f"{type(value).__name__} where GLM sends text")
    return value


def merge_tool_call_fragment(calls, fragment):
    """GLM sends each call whole by default, in fragments with `tool_stream`: merge by index."""
    call = calls.setdefault(fragment.get("index", 0), {"id": None, "name": "", "arguments": ""})
    if fragment.get("id"):
        call["id"] = text_of(fragment["id"])
    function = fragment.get("function") or {}
    call["name"] += function.get("name") or ""
    call["arguments"] += function.get("arguments") or ""


def usage_of(chunk):
    """The counts of a chunk's or completion's `usage`; ValueError or TypeError for a count
    that is no whole number from 0 to MAX_REPORTED_TOKENS."""
    usage = chunk.get("usage") or {}
    counts = {}
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        count = usage.get(key) or 0
        # A float only when whole (12.0); not a string, nor true, nor Infinity.
        if isinstance(count, float) and count.is_integer():
            count = int(count)
        if type(count) is not int or not 0 <= count <= MAX_REPORTED_TOKENS:
            raise ValueError(f"{key} is no count from 0 to {MAX_REPORTED_TOKENS}")
        counts[key] = count
    return counts
