"""The only importer of zhipuai: one SDK client per worker process, and every SDK or transport
failure turned into the project's 502/503/504 errors (GLM-PROTOCOL.md)."""
import logging
import os

import httpx
from zhipuai import ZhipuAI
from zhipuai.core._errors import (APIAuthenticationError, APIConnectionError,
                                  APIReachLimitError, APIServerFlowExceedError, APIStatusError,
                                  APITimeoutError, ZhipuAIError)

from .errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable

log = logging.getLogger(__name__)


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
        self._sdk = None
        self._pid = None

    @property
    def sdk(self):
        if not self.api_key:
            raise UpstreamUnavailable(details={"provider_error": "ZHIPUAI_API_KEY is not set"})
        if self._sdk is None or self._pid != os.getpid():
            http_client = httpx.Client(timeout=self.timeout, limits=httpx.Limits(
                max_connections=self.max_connections,
                max_keepalive_connections=min(self.max_connections, 100)))
            self._sdk = ZhipuAI(api_key=self.api_key, base_url=self.base_url,
                                timeout=self.timeout, max_retries=self.max_retries,
                                http_client=http_client)
            self._pid = os.getpid()
        return self._sdk

    def web_search(self, query, count):
        try:
            answer = self.sdk.web_search.web_search(search_engine="search_std",
                                                    search_query=query, count=count)
        except (ZhipuAIError, httpx.HTTPError) as error:
            raise translate(error) from error
        return [{"title": item.title, "url": item.link, "snippet": item.content,
                 "published": item.publish_date}
                for item in (answer.search_result or [])][:count]
