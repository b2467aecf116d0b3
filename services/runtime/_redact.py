"""The one redaction of URL credentials, for everything the node shows: logs, endpoints.json,
`status --json`, error messages.

Provider URLs carry secrets three ways: userinfo (``https://user:pass@host``), a key in the path
(Infura ``/v3/<key>``, Alchemy ``/v2/<key>``, QuickNode ``/<token>/``) and a key in the query
(``?apikey=...``). What is kept (scheme, host, port, the path's shape) is enough to tell which
endpoint is meant.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit, urlunsplit

MASK: Final = "***"
#: Query parameters that name a secret (compared lower-case, without - and _).
_SECRET_PARAMS: Final = frozenset(
    {"apikey", "key", "token", "accesstoken", "auth", "authorization", "secret", "password", "pass",
     "pwd", "signature", "sig", "credential", "credentials", "jwt", "projectid", "projectsecret"})
#: A path segment that looks like a key: 12+ characters mixing letters and digits (or a long hex
#: run). Ordinary path words ("rpc", "v3", "mainnet", "ext", "bor") do not match.
_KEYLIKE: Final = re.compile(
    r"^(?=[A-Za-z0-9_\-]*\d)(?=[A-Za-z0-9_\-]*[A-Za-z])[A-Za-z0-9_\-]{12,}$|^[0-9a-fA-F]{24,}$")
#: A version segment of a provider's path (v2, v3): the segment after it is its key.
_VERSION: Final = re.compile(r"^v\d+$")
#: A URL inside free text (a log message, an exception's string).
_URL_IN_TEXT: Final = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>]*[^\s'\"<>.,;:)\]}]")


def redact_url(url: str) -> str:
    """``url`` with every credential masked; a string that is not a URL comes back unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK  # unparseable (a bad IPv6 literal...): show nothing rather than a secret
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rpartition("@")[2]
    segments = parts.path.split("/")
    # Masked: a key-like segment, a long one, and whatever follows a version (Infura's /v3/<key>,
    # Alchemy's /v2/<key>: the key's shape is the provider's, so do not guess it).
    path = "/".join(MASK if _KEYLIKE.match(segment) or len(segment) >= 20 or (i and _VERSION.match(segments[i - 1]))
                    else segment for i, segment in enumerate(segments))
    query = "&".join(
        f"{name}={MASK if _secret_param(name) or _KEYLIKE.match(value) else value}" if sep else name
        for name, sep, value in (item.partition("=") for item in parts.query.split("&") if item)
    ) if parts.query else ""
    fragment = MASK if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, path, query, fragment))


def redact(text: str) -> str:
    """``text`` with every URL in it redacted (:func:`redact_url`)."""
    if "://" not in text:
        return text  # the common case, kept cheap: log lines without a URL
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def _secret_param(name: str) -> bool:
    return name.lower().replace("-", "").replace("_", "") in _SECRET_PARAMS

