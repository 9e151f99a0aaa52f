"""Image URLs users give us: http(s) with a public host; private, loopback, link-local and metadata
addresses refused however they are written. The local stack allows plain private hosts, nothing else."""
from __future__ import annotations

import pytest
from aigc.core.netcheck import UnsafeUrl, check_public_url

PUBLIC = [
    "https://example.com/a.png",
    "http://cdn.example.org:8080/x/y.jpg?w=1&h=2",
    "https://8.8.8.8/a.png",
    "https://[2606:4700:4700::1111]/a.png",
    "https://bücher.example/a.png",
]
ALWAYS_REFUSED = {
    "http://169.254.169.254/latest/meta-data/": "link-local or metadata",
    "http://[fd00:ec2::254]/latest/meta-data/": "link-local or metadata",
    "http://100.100.100.200/latest/meta-data/": "link-local or metadata",
    "http://[fe80::1]/a.png": "link-local or metadata",
    "http://0x7f000001/a.png": "dotted decimal",
    "http://2130706433/a.png": "dotted decimal",
    "http://0177.0.0.1/a.png": "dotted decimal",
    "http://127.1/a.png": "dotted decimal",
    "http://0xa9.0xfe.0xa9.0xfe/": "dotted decimal",
    "http://[::ffff:127.0.0.1]/a.png": "IPv4 address inside IPv6",
    "http://[::ffff:a9fe:a9fe]/a.png": "IPv4 address inside IPv6",
    "http://[2002:7f00:1::]/a.png": "IPv4 address inside IPv6",
    "http://user:pass@example.com/a.png": "user:password@",
    "http://example.com@169.254.169.254/a.png": "user:password@",
    "http://example.com/a.png\r\nX-Injected: 1": "control characters",
    "http://example.com/a\x00.png": "control characters",
    "http://example.com/a b.png": "spaces",
    "http://example.com\\@127.0.0.1/": "backslashes",
    "ftp://example.com/a.png": "http(s)",
    "file:///etc/passwd": "http(s)",
    "javascript:alert(1)": "http(s)",
    "http:///a.png": "valid host",
    "http://example.com:99999/a.png": "valid URL",
    "http://[fd00::1%25eth0]/a.png": "valid",
    "https://example.com/" + "a" * 3000: "2048 characters",
}
PRIVATE = [
    "http://127.0.0.1:8090/samples/cat.png",
    "http://10.0.0.8/a.png",
    "http://192.168.1.1/a.png",
    "http://172.16.0.1/a.png",
    "http://100.64.0.1/a.png",
    "http://0.0.0.0/a.png",
    "http://[::1]/a.png",
    "http://[fd12:3456::1]/a.png",
    "http://localhost/a.png",
    "http://LOCALHOST./a.png",
    "http://api.localhost/a.png",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://intranet/a.png",
    "http://printer.local/a.png",
]


@pytest.mark.parametrize("url", PUBLIC)
def test_public_urls_pass(url):
    assert check_public_url(url) == url


@pytest.mark.parametrize("url, reason", list(ALWAYS_REFUSED.items()))
@pytest.mark.parametrize("allow_private_hosts", [False, True])
def test_hostile_urls_are_refused_even_where_private_hosts_are_allowed(url, reason, allow_private_hosts):
    with pytest.raises(UnsafeUrl, match=reason.replace("(", r"\(").replace(")", r"\)")):
        check_public_url(url, allow_private_hosts=allow_private_hosts)


@pytest.mark.parametrize("url", PRIVATE)
def test_private_hosts_are_refused_in_aws_and_allowed_only_locally(url):
    with pytest.raises(UnsafeUrl, match="public"):
        check_public_url(url)
    assert check_public_url(url, allow_private_hosts=True) == url
