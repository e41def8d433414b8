"""Properties of the network guard's address check (chatapi.tools.netguard.refusal_reason),
called directly: nothing connects anywhere. Every loopback, private, link-local and unique-local
address, in IPv4, IPv6 and IPv4-mapped IPv6 form, is refused; public addresses are not."""
import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from chatapi.tools.netguard import refusal_reason

PROPERTY = settings(derandomize=True, deadline=None, max_examples=500)

BLOCKED_V4 = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
              "0.0.0.0/8", "100.64.0.0/10", "224.0.0.0/4", "240.0.0.0/4"]
BLOCKED_V6 = ["::1/128", "fc00::/7", "fe80::/10", "ff00::/8", "::/128"]
# Networks of large public operators (Google, Cloudflare, Quad9, Akamai, Level 3).
PUBLIC_V4 = ["8.8.8.0/24", "1.1.1.0/24", "142.250.0.0/15", "104.16.0.0/13", "9.9.9.0/24",
             "23.0.0.0/12", "4.0.0.0/9"]
PUBLIC_V6 = ["2001:4860::/32", "2606:4700::/32", "2a00:1450::/32", "2620:fe::/48"]


def addresses_in(networks):
    """Any address of any of the networks, its first and last ones included."""
    def pick(network):
        network = ipaddress.ip_network(network)
        return st.integers(0, network.num_addresses - 1).map(
            lambda offset: network.network_address + offset)
    return st.sampled_from(networks).flatmap(pick)


def mapped(ipv4):
    return ipaddress.IPv6Address(f"::ffff:{ipv4}")


@PROPERTY
@given(addresses_in(BLOCKED_V4))
def test_blocked_ipv4_addresses_are_refused(address):
    assert refusal_reason(address) is not None


@PROPERTY
@given(addresses_in(BLOCKED_V6))
def test_blocked_ipv6_addresses_are_refused(address):
    assert refusal_reason(address) is not None


@PROPERTY
@given(addresses_in(BLOCKED_V4).map(mapped))
def test_ipv4_mapped_forms_of_blocked_addresses_are_refused(address):
    assert refusal_reason(address) is not None


@PROPERTY
@given(addresses_in(["127.0.0.0/8"]))
def test_loopback_is_refused_as_loopback(address):
    assert refusal_reason(address) == "loopback address"


@PROPERTY
@given(addresses_in(PUBLIC_V4 + PUBLIC_V6))
def test_public_addresses_pass_the_check(address):
    assert refusal_reason(address) is None
