"""Image references as docker reads them: ``busybox`` is
``docker.io/library/busybox:latest``.

A reference is ``[DOMAIN/]PATH[:TAG][@DIGEST]``.  The grammar, the normalisation
(``docker.io`` for names without a registry, ``library/`` for official images,
``latest`` when there is no tag or digest) and the error texts follow
github.com/distribution/reference, which docker, podman and containerd share, so
a name accepted or refused by ``docker`` is accepted or refused here, with the
same message.  The registry client (pull/push) and the engine both parse names
here and nowhere else.
"""

import re
from dataclasses import dataclass

from pybox.errors import InvalidReference

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"

REFERENCE_RE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$")
TAG_RE = re.compile(rf"^{_TAG}$")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
ANCHORED_ID_RE = re.compile(r"^[a-f0-9]{64}$")
SHORT_ID_RE = re.compile(r"^(?:sha256:)?[a-f0-9]{1,64}$")


@dataclass(frozen=True)
class Reference:
    """A normalised reference: ``domain`` and ``path`` always set, at least one of
    ``tag`` / ``digest`` (``latest`` is filled in when neither was given)."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``docker.io/library/busybox``: the repository, without tag or digest."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        return self._with_tag_and_digest(self.name)

    @property
    def familiar_name(self) -> str:
        """The short form docker prints: ``busybox``, ``me/app``, ``quay.io/x/y``."""
        return familiar_name(self.name)

    def familiar(self) -> str:
        """``busybox:latest`` as in ``docker images``' RepoTags."""
        return self._with_tag_and_digest(self.familiar_name)

    def _with_tag_and_digest(self, name: str) -> str:
        if self.tag:
            name += f":{self.tag}"
        if self.digest:
            name += f"@{self.digest}"
        return name

    def with_tag(self, tag: str) -> "Reference":
        validate_tag(tag)
        return Reference(self.domain, self.path, tag, None)

    def with_digest(self, digest: str) -> "Reference":
        validate_digest(digest)
        return Reference(self.domain, self.path, None, digest)


def _split_docker_domain(name: str) -> tuple[str, str]:
    """distribution's splitDockerDomain: the first component is a registry only
    if it looks like a host (has a '.' or ':' or is 'localhost') or has capitals."""
    first, sep, rest = name.partition("/")
    if not sep or (first != "localhost" and "." not in first and ":" not in first
                   and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def parse(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise a reference as ``docker pull``/``docker tag`` do.

    Raises InvalidReference with docker's wording.  With ``default_tag`` a name
    with neither tag nor digest gets ``latest``."""
    if not isinstance(text, str) or not text:
        raise InvalidReference("invalid reference format")
    if ANCHORED_ID_RE.match(text):
        raise InvalidReference(f"invalid repository name ({text}), cannot specify "
                               "64-byte hexadecimal strings")
    remote, _, after = text.partition("@")
    name_part = remote
    tag: str | None = None
    # a ':' after the last '/' starts the tag (a ':' before it is a registry port)
    colon = remote.rfind(":")
    if colon > remote.rfind("/"):
        name_part, tag = remote[:colon], remote[colon + 1:]
    domain, path = _split_docker_domain(name_part)
    if path.lower() != path:
        raise InvalidReference(f"invalid reference format: repository name ({path}) "
                               "must be lowercase")
    normalised = f"{domain}/{path}"
    if tag is not None:
        normalised += f":{tag}"
    if after or "@" in text:
        normalised += f"@{after}"
    match = REFERENCE_RE.match(normalised)
    if not match:
        raise InvalidReference("invalid reference format")
    name, tag, digest = match.groups()
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(f"invalid reference format: repository name must not be "
                               f"more than {NAME_TOTAL_LENGTH_MAX} characters")
    if digest is not None:
        validate_digest(digest)
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def parse_repository(text: str) -> Reference:
    """A repository name with no tag or digest (``docker import - NAME`` may get
    one; ``docker tag`` targets must be one with a tag): the Reference, untagged."""
    ref = parse(text, default_tag=False)
    return Reference(ref.domain, ref.path, ref.tag, ref.digest)


def familiar_name(name: str) -> str:
    """``docker.io/library/busybox`` -> ``busybox``; ``docker.io/me/x`` -> ``me/x``."""
    prefix = DEFAULT_DOMAIN + "/"
    if name.startswith(prefix):
        name = name[len(prefix):]
        if name.startswith(OFFICIAL_REPO_PREFIX) and name.count("/") == 1:
            name = name[len(OFFICIAL_REPO_PREFIX):]
    return name


def validate_tag(tag: str) -> str:
    if not TAG_RE.match(tag or ""):
        raise InvalidReference(f"invalid tag format: {tag!r}")
    return tag


def validate_digest(digest: str) -> str:
    """Only sha256 is stored; other algorithms are refused with opencontainers'
    wording."""
    algorithm, sep, hexpart = (digest or "").partition(":")
    if not sep:
        raise InvalidReference(f"invalid checksum digest format: {digest!r}")
    if algorithm != "sha256":
        raise InvalidReference(f"unsupported digest algorithm: {digest!r}")
    if not DIGEST_RE.match(digest):
        raise InvalidReference(f"invalid checksum digest length: {digest!r}"
                               if re.fullmatch(r"[0-9a-f]*", hexpart)
                               else f"invalid checksum digest format: {digest!r}")
    return digest


def looks_like_id(text: str) -> bool:
    """``sha256:abc...``, full or abbreviated hex ids as ``docker rmi 3f57`` takes."""
    return bool(SHORT_ID_RE.match(text or ""))
