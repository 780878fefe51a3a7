"""A private IPv4 /24 for a test's (or a benchmark's) pod network: one nothing on
the host routes or has an address in, so a CNI bridge on it leaves the host's
own networking as it is.  Shared by tests/cri, tests/compat's containerd CRI
test and benchmarks/cri.py."""

import ipaddress
import json
import random
import subprocess


def host_networks():
    """Every IPv4 network the host routes (all tables) or has an address in."""
    nets = []
    for argv in (["ip", "-4", "-j", "route", "show", "table", "all"], ["ip", "-4", "-j", "addr"]):
        out = subprocess.run(argv, capture_output=True, text=True).stdout or "[]"
        for entry in json.loads(out):
            dst = entry.get("dst")
            if dst and dst not in ("default", ""):
                try:
                    nets.append(ipaddress.ip_network(dst, strict=False))
                except ValueError:
                    pass
            for a in entry.get("addr_info", ()):
                nets.append(ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False))
    return nets


def free_subnet(taken=()):
    """A random /24 in 10.128.0.0/9 overlapping neither the host's networks nor
    ``taken`` (subnets the caller already chose)."""
    used = host_networks() + [ipaddress.ip_network(t) for t in taken]
    rng = random.Random()
    for _ in range(500):
        net = ipaddress.ip_network(f"10.{rng.randint(128, 254)}.{rng.randint(0, 255)}.0/24")
        if not any(net.overlaps(u) for u in used):
            return str(net)
    raise RuntimeError("no free /24 in 10.128.0.0/9 for a pod network")
