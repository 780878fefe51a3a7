"""Unique names, so that tests can run in parallel (pytest -n 2) and next to
other users of the same daemon, and the ``names`` fixtures' body."""

import uuid


def unique_name(prefix: str = "t", digits: int = 10) -> str:
    """``prefix-<digits random hex digits>``."""
    return f"{prefix}-{uuid.uuid4().hex[:digits]}"


class NameBook:
    """names() -> a unique name for a container (or a network) the test is
    about to make; ``cleanup()`` removes those that exist, whatever the test
    did.  ``daemon`` is a private pyboxd (``support.pyboxd.Pyboxd``)."""

    def __init__(self, daemon, prefix: str = "t", digits: int = 10, networks: bool = False):
        self.daemon = daemon
        self.prefix = prefix
        self.digits = digits
        self.networks = networks  # a name may also be a network's
        self.made: list[str] = []

    def __call__(self, prefix: str | None = None) -> str:
        name = unique_name(self.prefix if prefix is None else prefix, self.digits)
        self.made.append(name)
        return name

    def cleanup(self) -> None:
        if not self.made:
            return
        ps = self.daemon.docker("ps", "-a", "--format", "{{.Names}}", check=False)
        mine = [n for n in self.made if n in set(ps.stdout.split())]
        if mine:
            self.daemon.docker("rm", "-f", *mine, timeout=120, check=False)
        if self.networks:
            ls = self.daemon.docker("network", "ls", "--format", "{{.Name}}", check=False)
            for name in [n for n in self.made if n in set(ls.stdout.split())]:
                self.daemon.docker("network", "rm", name, check=False)
