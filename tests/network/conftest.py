"""Fixtures for the networking tests: a private pyboxd, and network namespaces
of the test's own as "other hosts".

Nothing here sends a packet off this machine:

- the private pyboxd gets PYBOX_HOST_RESOLV_CONF, a resolv.conf naming a DNS
  server the test runs in a namespace of its own (``upstream``), so names the
  embedded DNS forwards go there and not to the host's real resolvers;
- "other hosts" (``TestHost``) are namespaces linked to the host by a veth
  pair in 198.18.0.0/15 (RFC 2544's benchmarking range, never routed).

Every object made here is named ``pyboxt...`` (links) or lives under the
fixture's own directories, and is removed at the end; a final check asserts
that the private pyboxd left no link, nft table, namespace or conntrack entry
behind.
"""

import os
import shutil
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # the tests import netutil
    sys.path.insert(0, HERE)

from netutil import Pyboxd, TestHost, Upstream  # noqa: E402

from support.host import remove_tree  # noqa: E402
from support.names import NameBook  # noqa: E402


@pytest.fixture(scope="session")
def netbase():
    if os.geteuid() != 0:
        pytest.skip("needs root (namespaces, bridges, nftables)")
    for tool in ("nft", "ip", "nsenter", "conntrack"):
        if not shutil.which(tool):
            pytest.skip(f"needs {tool}")
    try:
        import nftables  # noqa: F401
        import pyroute2  # noqa: F401
    except ImportError as e:
        pytest.skip(f"needs {e.name}")
    base = tempfile.mkdtemp(prefix="pybox-net-", dir="/run")
    yield base
    remove_tree(base)


@pytest.fixture(scope="session")
def upstream(netbase):
    """A DNS server in an "other host" namespace, named by the private
    pyboxd's resolv.conf."""
    host = TestHost(netbase)
    server = Upstream(host)
    yield server
    server.close()
    host.remove()


@pytest.fixture(scope="session")
def pyboxd(netbase, upstream):
    conf = os.path.join(netbase, "resolv.conf")
    with open(conf, "w") as f:
        f.write(f"nameserver {upstream.host.ip}\nsearch upstream.test\n")
    daemon = Pyboxd(netbase, conf)
    try:
        daemon.start()
        daemon.import_busybox()
        yield daemon
    finally:
        ids = daemon.docker("ps", "-aq", check=False).stdout.split()
        if ids:
            daemon.docker("rm", "-f", *ids, check=False)
        for name in daemon.docker("network", "ls", "-q", "--filter", "type=custom",
                                  check=False).stdout.split():
            daemon.docker("network", "rm", name, check=False)
        problems = daemon.finish()
    assert not problems, "\n".join(problems)


@pytest.fixture
def names(pyboxd):
    """Unique names; containers and networks so named are removed afterwards."""
    book = NameBook(pyboxd, digits=6, networks=True)
    yield book
    book.cleanup()


@pytest.fixture
def test_host(netbase):
    hosts = []

    def make(subnet=None):
        h = TestHost(netbase, subnet)
        hosts.append(h)
        return h
    yield make
    for h in hosts:
        h.remove()
