"""The engine's registry side: pull, push, login, search and a remote image's
descriptor (GET /distribution/NAME/json), on pybox.images' registry client.

``Engine.distribution`` is one ``Distribution``: its methods take plain values
(a reference, a platform, credentials) and a ``progress`` callable that gets
each of docker's progress messages (pybox.images.progress.ProgressMessage) as
it happens, from whichever thread did the work; they raise pybox errors and
emit the image events (``pull``, ``push``) when done.  How the messages reach a
client, and what an error becomes before and after the first of them, is the
API's business (pybox.api.registry).

The registry configuration (insecure registries, mirrors, limits) is
``options``: pyboxd sets it from daemon.json and its flags (``configure``);
without it, /etc/pybox/daemon.json or nothing.  One ``Registries`` per engine,
made on first use, keeps connections and tokens between requests.
"""

import threading
from typing import TYPE_CHECKING

from pybox.engine.events import EventBus
from pybox.engine.images import ImageService
from pybox.errors import ImageNotFound, InvalidReference, NotFound
from pybox.images import progress as P
from pybox.images import reference as references
from pybox.images.auth import ANONYMOUS, Credentials
from pybox.images.pull import pull as pull_image
from pybox.images.pull import pull_all_tags
from pybox.images.registry_config import RegistryOptions

if TYPE_CHECKING:
    from pybox.images.registry import Registries
    from pybox.images.remote_inspect import DistributionInspect
    from pybox.images.search import SearchResult


class Distribution:
    """Pull, push and login for one engine (see the module's docstring)."""

    def __init__(self, images: ImageService, events: EventBus,
                 options: RegistryOptions | None = None) -> None:
        self._images = images
        self._events = events
        self.options = options
        self._lock = threading.Lock()
        self._registries: Registries | None = None

    def configure(self, options: RegistryOptions) -> None:
        """Use ``options`` from now on (pyboxd, at start: before any pull)."""
        with self._lock:
            self.options = options
            self._registries = None

    def registries(self) -> "Registries":
        """The engine's Registries (made on first use from its options)."""
        # urllib3 and ssl: 5 MB and 70 ms at every pyboxd start (and in the
        # zygote it forks) for what only a pull, push or login needs
        from pybox.images.registry import Registries  # noqa: PLC0415 -- heavy, first use

        with self._lock:
            if self._registries is None:
                options = self.options
                if options is None:
                    options = RegistryOptions.from_daemon_config()
                self._registries = Registries(options)
            return self._registries

    def pull(self, from_image: str, tag: str = "", *, platform: str | None = None,
             credentials: Credentials = ANONYMOUS,
             progress: P.Report = P.discard) -> list[str]:
        """``docker pull``: ``from_image`` with ``tag`` (a tag, or a digest when
        it looks like one); a name with neither a tag nor a digest and no
        ``tag`` pulls every tag of the repository (dockerd's rule, what
        ``docker pull --all-tags`` sends).  -> the references pulled."""
        repo = references.parse(from_image, default_tag=False)
        store = self._images.images
        if not tag and not repo.tag and not repo.digest:
            result = pull_all_tags(store, self.registries(), repo, platform=platform,
                                   credentials=credentials, report=progress)
            pulled = [r["reference"] for r in result["pulled"]]
        else:
            one = pull_image(store, self.registries(), _pull_reference(from_image, tag),
                             platform=platform, credentials=credentials, report=progress)
            pulled = [one["reference"]]
        for ref in pulled:
            self._events.emit("image", "pull", ref, {"name": ref})
        return pulled

    def push(self, name: str, tag: str = "", *, credentials: Credentials = ANONYMOUS,
             progress: P.Report = P.discard) -> list[str]:
        """``docker push``: NAME:TAG, or with no ``tag`` every tag of NAME.
        -> the references pushed."""
        # the registry client's upload side: loaded with it (see registries)
        from pybox.images.push import push as push_image  # noqa: PLC0415 -- heavy, first use
        from pybox.images.push import push_repository  # noqa: PLC0415 -- heavy, first use

        store = self._images.images
        repo = references.parse_repository(name)
        if tag:
            target = repo.with_tag(tag) if not repo.tag else repo
            try:
                store.resolve(str(target))
            except ImageNotFound:
                progress({"status": f"The push refers to repository [{target.name}]"})
                raise NotFound("An image does not exist locally with the tag: "
                               f"{target.familiar_name}") from None
            push_image(store, self.registries(), target, credentials=credentials,
                       report=progress)
            pushed = [target.familiar()]
        else:
            results = push_repository(store, self.registries(), name, credentials=credentials,
                                      report=progress)
            pushed = [f"{repo.familiar_name}:{r['tag']}" for r in results]
        for ref in pushed:
            self._events.emit("image", "push", ref, {"name": ref})
        return pushed

    def login(self, server_address: str, credentials: Credentials) -> dict[str, str]:
        """``docker login``: check ``credentials`` against the registry ->
        {"Status": "Login Succeeded", "IdentityToken": ...}; AuthenticationError
        when refused."""
        from pybox.images.registry import login  # noqa: PLC0415 -- heavy, first use

        return login(self.registries(), server_address, credentials)

    def search(self, term: str, *, limit: int = 0, filters: dict[str, list[str]] | None = None,
               credentials: Credentials = ANONYMOUS,
               headers: dict[str, str] | None = None) -> list["SearchResult"]:
        """``docker search``: the registry's /v1/search for ``term``, filtered
        as dockerd filters (pybox.images.search)."""
        from pybox.images.search import search  # noqa: PLC0415 -- heavy (urllib3), first use

        return search(self.registries(), term, limit=limit, filters=filters,
                      credentials=credentials, headers=headers)

    def inspect(self, name: str, credentials: Credentials = ANONYMOUS) -> "DistributionInspect":
        """``GET /distribution/NAME/json``: the registry's descriptor of NAME's
        manifest or index and its platforms (pybox.images.remote_inspect)."""
        from pybox.images.remote_inspect import inspect  # noqa: PLC0415 -- heavy, first use

        return inspect(self.registries(), name, credentials)


def _pull_reference(from_image: str, tag: str) -> references.Reference:
    """dockerd's rule: ``tag`` is a tag, or a digest when it looks like one; a
    tag in ``fromImage`` itself counts when ``tag`` is empty."""
    if tag:
        ref = references.parse(from_image, default_tag=False)
        if ref.tag or ref.digest:
            raise InvalidReference(f"invalid reference format: {from_image} already has a "
                                   "tag or digest")
        separator = "@" if ":" in tag and tag.split(":", 1)[0] == "sha256" else ":"
        return references.parse(f"{from_image}{separator}{tag}")
    return references.parse(from_image)
