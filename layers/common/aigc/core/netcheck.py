"""Is a user-given URL safe to hand to a fetcher: http(s), a public host, nothing smuggled in it.

This is the syntactic check done at submit, without DNS: literal and encoded IP addresses
(`0x7f000001`, `2130706433`, `0177.0.0.1`, `[::ffff:127.0.0.1]`) are decoded the way URL parsers
and `inet_aton` decode them and must be public; names must be well-formed, have a dot and not be
local (`localhost`, `*.internal`, ...). A public name that resolves to a private address is the
fetcher's to refuse at connect time (DNS rebinding); DashScope fetches its inputs itself.
"""
from __future__ import annotations

import ipaddress
import re
import socket
import unicodedata
from urllib.parse import urlsplit

from aigc.core.i18n import Message, _

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "metadata", "metadata.google.internal", "instance-data",
                "instance-data.ec2.internal", "ip6-localhost", "ip6-loopback"}
_LOCAL_SUFFIXES = (".localhost", ".local", ".localdomain", ".internal", ".intranet", ".lan", ".home", ".corp",
                   ".home.arpa", ".in-addr.arpa", ".ip6.arpa")
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# AWS (IMDS over IPv4 and IPv6, ECS task metadata) and Alibaba Cloud's metadata endpoints.
METADATA_ADDRESSES = {ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2",
                                                         "100.100.100.200")}


class UnsafeUrl(ValueError):
    """Why a URL is refused (a short phrase for the user; `text` in every language)."""

    def __init__(self, text: Message):
        super().__init__(str(text))
        self.text = text


def is_public_address(address: IPAddress) -> bool:
    """A globally routable unicast address, also for the IPv4 address an IPv6 one embeds."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = [address.ipv4_mapped, address.sixtofour, address.teredo[1] if address.teredo else None]
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if any(inner is not None and not is_public_address(inner) for inner in embedded):
            return False
        if address.ipv4_mapped is not None:
            return True  # ::ffff:8.8.8.8 is 8.8.8.8
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_unspecified)


def literal_address(host: str) -> IPAddress | None:
    """The address a host names literally (also in the octal, hex and integer forms), else None."""
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise UnsafeUrl(_("the host is not a valid IPv6 address")) from None
    last = host.rstrip(".").rsplit(".", 1)[-1]
    if not _NUMERIC_LABEL.match(last):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
    except OSError:
        raise UnsafeUrl(_("the host is not a valid IPv4 address")) from None


def _check_name(host: str) -> None:
    try:
        name = host.encode("idna").decode("ascii").rstrip(".")
    except UnicodeError:
        raise UnsafeUrl(_("the host is not a valid name")) from None
    if len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise UnsafeUrl(_("the host is not a valid name"))
    if name in _LOCAL_NAMES or name.endswith(_LOCAL_SUFFIXES) or "." not in name:
        raise UnsafeUrl(_("the host must be a public name or address"))


def _check_address(host: str, address: IPAddress, allow_private_hosts: bool) -> None:
    # Never legitimate, also where private hosts are allowed (the local stack): other spellings of an
    # address, IPv4 inside IPv6, link-local and the cloud metadata endpoints.
    if isinstance(address, ipaddress.IPv4Address) and host != str(address):
        raise UnsafeUrl(_("write an IPv4 host in dotted decimal (no octal, hex or integer forms)"))
    if isinstance(address, ipaddress.IPv6Address) and (address.ipv4_mapped or address.sixtofour or address.teredo
                                                       or address in _NAT64):
        raise UnsafeUrl(_("the host must not be an IPv4 address inside IPv6"))
    if address.is_link_local or address in METADATA_ADDRESSES:
        raise UnsafeUrl(_("the host must not be a link-local or metadata address"))
    if not allow_private_hosts and not is_public_address(address):
        raise UnsafeUrl(_("the host must be a public address (not private, loopback, link-local or metadata)"))


def check_public_url(url: str, *, allow_private_hosts: bool = False, max_chars: int = 2048) -> str:
    """Return the URL if it is an http(s) URL of a public host; raise UnsafeUrl saying why not.

    `allow_private_hosts` (the local stack only) lets loopback and private hosts in, written plainly
    (`http://127.0.0.1:8090/...`, `localhost`); nothing else.
    """
    if len(url) > max_chars:
        raise UnsafeUrl(_("a URL is at most {limit} characters", limit=max_chars))
    if any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in url):
        raise UnsafeUrl(_("the URL must not contain spaces or control characters"))
    if "\\" in url:
        raise UnsafeUrl(_("the URL must not contain backslashes"))
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrl(_("not a valid URL")) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise UnsafeUrl(_("must be an http(s) URL"))
    if "@" in parts.netloc:
        raise UnsafeUrl(_("the URL must not contain user:password@"))
    host = parts.hostname or ""
    if not host or "%" in host or (port is not None and not 0 < port < 65536):
        raise UnsafeUrl(_("the URL needs a valid host"))
    address = literal_address(host)
    if address is not None:
        _check_address(host, address, allow_private_hosts)
    elif not allow_private_hosts:
        _check_name(host)
    return url
