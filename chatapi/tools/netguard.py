"""The network guard: the one way tools fetch a URL. Only http/https; every address connected
to must be public (unless its `host[:port]` is in FETCH_ALLOWED_HOSTS, or is the origin of a
base URL the operator configured for that tool), re-checked on every redirect; the body is
capped in bytes and the whole fetch in wall-clock time."""
import ipaddress
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests_hardened import HTTPSession
from requests_hardened.config import Config as HardenedConfig
from requests_hardened.ip_filter import EXTRA_BLOCKED_NET_RANGES, InvalidIPAddress
from requests_hardened.ip_filter_adapter import IPFilterAdapter

from ..errors import UpstreamError, UpstreamTimeout, ValidationFailed

MAX_REDIRECTS = 5
CHUNK_BYTES = 64 * 1024
SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
USER_AGENT = "ChatAPI-fetch/1.0"
ACCEPT = "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.5"


@dataclass(frozen=True)
class FetchResult:
    url: str
    status: int
    headers: CaseInsensitiveDict
    content_type: str
    body: bytes
    truncated: bool

    @property
    def charset(self):
        """The charset declared in the Content-Type header, or None."""
        for param in self.headers.get("content-type", "").split(";")[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "charset" and value.strip().strip("\"'"):
                return value.strip().strip("\"'").lower()
        return None


class RefusedAddress(InvalidIPAddress):
    """An address requests-hardened lets through but this service does not."""


def refusal_reason(ip):
    """Why connecting to `ip` is refused, or None when it is a public unicast address.
    (requests-hardened has already replaced an IPv4-mapped IPv6 address by its IPv4 one.)"""
    checks = (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
              ("multicast", ip.is_multicast), ("unspecified", ip.is_unspecified),
              ("reserved", ip.is_reserved),
              ("special-purpose", any(ip in net for net in EXTRA_BLOCKED_NET_RANGES)),
              ("private", ip.is_private), ("non-global", not ip.is_global))
    return next((f"{name} address" for name, hit in checks if hit), None)


def refusal_message(host, address):
    reason = refusal_reason(ipaddress.ip_address(address)) or "non-public address"
    return f"{host} resolves to {address}, a {reason}: refused"


def host_and_port(url):
    parts = urlsplit(url)
    return (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(parts.scheme)


def is_allowed(url, allowed_hosts):
    """`host` in FETCH_ALLOWED_HOSTS exempts every port of that host; `host:port` only that
    port. The host is compared as written in the URL, so `127.1` is not `127.0.0.1`."""
    host, port = host_and_port(url)
    for entry in allowed_hosts:
        allowed = urlsplit(f"//{entry.strip()}")
        if (allowed.hostname or "").lower() == host and allowed.port in (None, port):
            return True
    return False


class GuardedAdapter(IPFilterAdapter):
    """requests-hardened resolves the host once, refuses private/loopback results and pins the
    connection to the address it checked; this adds the stricter `refusal_reason` on that very
    address, the FETCH_ALLOWED_HOSTS exemption and that of the trusted (host, port) origins."""

    def __init__(self, is_https_proto, allowed_hosts, trusted_origins):
        super().__init__(is_https_proto=is_https_proto, allow_loopback=False)
        self.allowed_hosts = tuple(allowed_hosts)
        self.trusted_origins = frozenset(trusted_origins)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        if (is_allowed(request.url, self.allowed_hosts)
                or host_and_port(request.url) in self.trusted_origins):
            return HTTPAdapter.build_connection_pool_key_attributes(self, request, verify, cert)
        host = urlsplit(request.url).hostname
        try:
            host_params, pool_kwargs = super().build_connection_pool_key_attributes(
                request, verify, cert)
        except InvalidIPAddress as error:
            raise RefusedAddress(refusal_message(host, str(error))) from error
        if refusal_reason(ipaddress.ip_address(host_params["host"].strip("[]"))):
            raise RefusedAddress(refusal_message(host, host_params["host"].strip("[]")))
        return host_params, pool_kwargs


def session_for(config, trusted):
    session = HTTPSession(HardenedConfig(
        ip_filter_enable=False, ip_filter_allow_loopback_ips=False, never_redirect=True,
        default_timeout=None, user_agent_override=USER_AGENT))
    # Proxy variables are ignored: a proxy would connect on our behalf, unchecked.
    session.trust_env = False
    allowed = config.get("FETCH_ALLOWED_HOSTS") or ()
    origins = [host_and_port(url) for url in trusted]
    session.mount("http://", GuardedAdapter(False, allowed, origins))
    session.mount("https://", GuardedAdapter(True, allowed, origins))
    return session


def checked_scheme(url):
    scheme = urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        raise ValidationFailed(text_key="url_invalid", details={
            "url": [f"scheme {scheme or '(none)'!r} is not http/https"]})
    return url


def remaining(deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise UpstreamTimeout()
    return left


def opened(session, url, deadline):
    """The final response (headers read, body not yet) after at most MAX_REDIRECTS hops,
    each one a fresh guarded request."""
    for _hop in range(MAX_REDIRECTS + 1):
        left = remaining(deadline)
        response = session.get(checked_scheme(url), stream=True, timeout=(left, left),
                               headers={"Accept": ACCEPT})
        location = session.get_redirect_target(response)
        if location is None:
            return response
        response.close()
        url = urljoin(response.url, location)
    raise UpstreamError(text_key="too_many_redirects",
                        details={"url": [f"more than {MAX_REDIRECTS} redirects"]})


def read_capped(response, max_bytes, deadline):
    """Up to `max_bytes` of the decoded body, and whether there was more. read1 returns what
    has arrived, so a body that trickles in still meets the deadline check."""
    raw = response.raw
    chunks, total = [], 0
    while total <= max_bytes:
        if raw.connection is not None and raw.connection.sock is not None:
            raw.connection.sock.settimeout(remaining(deadline))
        chunk = raw.read1(min(CHUNK_BYTES, max_bytes + 1 - total), decode_content=True)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        remaining(deadline)
    body = b"".join(chunks)
    return body[:max_bytes], len(body) > max_bytes


def fetch(url, *, config, max_bytes, timeout, accept=None, trusted=()):
    """GET `url` -> FetchResult. `accept(content_type)` may raise to refuse a response before
    its body is read. `trusted`: base URLs the operator configured (never the caller), whose
    host and port are exempt like FETCH_ALLOWED_HOSTS entries, for this fetch only. Refused or
    malformed URL -> 422; connection failure or 5xx -> 502; over `timeout` seconds in all
    -> 504."""
    deadline = time.monotonic() + timeout
    try:
        with session_for(config, trusted) as session:
            response = opened(session, url, deadline)
            with response:
                if response.status_code >= 500:
                    raise UpstreamError(details={"status": response.status_code})
                content_type = (response.headers.get("content-type", "")
                                .split(";")[0].strip().lower())
                if accept is not None:
                    accept(content_type)
                body, truncated = read_capped(response, max_bytes, deadline)
                return FetchResult(url=response.url, status=response.status_code,
                                   headers=response.headers, content_type=content_type,
                                   body=body, truncated=truncated)
    except InvalidIPAddress as error:
        raise ValidationFailed(text_key="url_refused", details={"url": [str(error)]}) from error
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema, urllib3.exceptions.LocationParseError) as error:
        raise ValidationFailed(text_key="url_invalid", details={"url": [str(error)]}) from error
    except (requests.Timeout, urllib3.exceptions.TimeoutError) as error:
        raise UpstreamTimeout() from error
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
        raise UpstreamError(details={"reason": type(error).__name__}) from error
