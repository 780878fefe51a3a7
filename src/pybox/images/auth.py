"""Registry credentials on the daemon's side, as docker passes them.

(Credentials, the header's encoding and config.json's keys are formats shared
with the client: pybox.formats.registryauth; the client's config.json and
credential helpers are pybox.cli.pybox.credentials.)

* ``X-Registry-Auth``: the API's header, base64 (URL-safe) JSON
  ``{"username", "password", "serveraddress", "identitytoken", "registrytoken"}``.
* ``WWW-Authenticate`` challenges: ``Bearer realm="...",service="...",scope="..."``
  or ``Basic realm="..."``, parsed per RFC 7235 (quoted strings, commas).
"""

import base64
import json
import re

from pybox.errors import InvalidAuthHeader
from pybox.formats.registryauth import ANONYMOUS, Credentials

# -- WWW-Authenticate ---------------------------------------------------------------

Challenge = tuple[str, dict[str, str]]  # (scheme lower-cased, {param lower-cased: value})

_CHALLENGE_TOKEN = re.compile(
    r'\s*(?:([!#$%&\'*+.^_`|~0-9A-Za-z/-]+)|"((?:[^"\\]|\\.)*)"|(=)|(,))')


def parse_challenges(header: str | None) -> list[Challenge]:
    """[(scheme lower-cased, {param: value})] from a WWW-Authenticate value
    (several challenges may share one header, separated by commas)."""
    tokens: list[tuple[str, str]] = []
    pos, text = 0, header or ""
    while pos < len(text):
        match = _CHALLENGE_TOKEN.match(text, pos)
        if not match or match.end() == pos:
            break
        pos = match.end()
        word, quoted, equals, _comma = match.groups()
        if word is not None:
            tokens.append(("word", word))
        elif quoted is not None:
            tokens.append(("value", re.sub(r"\\(.)", r"\1", quoted)))
        elif equals:
            tokens.append(("=", "="))
        else:
            tokens.append((",", ","))
    challenges: list[Challenge] = []
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        is_param = i + 2 < len(tokens) and tokens[i + 1][0] == "="
        if kind == "word" and not is_param:
            challenges.append((value.lower(), {}))
            i += 1
        elif kind == "word" and challenges:
            challenges[-1][1][value.lower()] = tokens[i + 2][1]
            i += 3
        else:
            i += 1
    return challenges


# -- the API's X-Registry-Auth ----------------------------------------------------------

AUTH_CONFIG_FIELDS = ("username", "password", "auth", "email", "serveraddress",
                      "identitytoken", "registrytoken")


def decode_registry_auth(header: str | None) -> Credentials:
    """Credentials from an X-Registry-Auth value ('' or ``e30=`` = anonymous).
    docker sends URL-safe base64, older clients standard base64, some unpadded."""
    if not header:
        return ANONYMOUS
    text = header.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
        doc = json.loads(raw or b"{}")
    except (ValueError, TypeError):
        raise InvalidAuthHeader("not base64 JSON") from None
    except RecursionError:  # 10,000 nested '[': Go's decoder stops at depth 10,000 too
        raise InvalidAuthHeader("exceeded max depth") from None
    if not isinstance(doc, dict):
        return ANONYMOUS
    for key in AUTH_CONFIG_FIELDS:  # decoded by type, as Go's into AuthConfig
        value = doc.get(key)
        if value is not None and not isinstance(value, str):
            kind = {bool: "bool", int: "number", float: "number", list: "array",
                    dict: "object"}.get(type(value), "value")
            raise InvalidAuthHeader(f"json: cannot unmarshal {kind} into Go struct field "
                                    f"AuthConfig.{key} of type string")
    return Credentials(username=doc.get("username") or "",
                       password=doc.get("password") or "",
                       identity_token=doc.get("identitytoken") or "",
                       registry_token=doc.get("registrytoken") or "")
