"""Swarm mode, which pybox does not implement, answered as a dockerd answers
when it is not part of a swarm (managed plugins: api/plugins.py).

A client that probes them gets dockerd's status and words instead of a 404
"page not found": docker-py's leave_swarm(force=True) accepts the 503.
"""

from __future__ import annotations

from pybox.api.server import Request, Response, Router
from pybox.errors import NotInSwarm

# moby daemon/cluster: errNoManager for a node without a swarm, errNoSwarm
NOT_A_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm '
                 'join" to connect this node to swarm and try again.')
NOT_IN_SWARM = "This node is not part of a swarm"
NO_SWARM_MODE = ("pybox does not implement swarm mode: this node cannot start or join "
                 "a swarm")

# the swarm-mode object kinds: every route under them needs a manager
SWARM_KINDS = ("swarm", "nodes", "services", "tasks", "secrets", "configs")


def register(router: Router) -> None:
    r = router

    def not_a_manager(req: Request, resp: Response, **_: str) -> None:
        req.discard_body()
        raise NotInSwarm(NOT_A_MANAGER)

    def not_in_swarm(req: Request, resp: Response) -> None:
        req.discard_body()
        raise NotInSwarm(NOT_IN_SWARM)

    def no_swarm_mode(req: Request, resp: Response) -> None:
        req.discard_body()
        raise NotInSwarm(NO_SWARM_MODE)

    r.add("POST", "/swarm/leave", not_in_swarm)
    r.add("POST", "/swarm/init", no_swarm_mode)
    r.add("POST", "/swarm/join", no_swarm_mode)
    for kind in SWARM_KINDS:
        for method in ("GET", "POST", "DELETE"):
            r.add(method, f"/{kind}", not_a_manager)
            r.add(method, f"/{kind}/{{rest*}}", not_a_manager)

