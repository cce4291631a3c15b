"""Error messages fit for public endpoints: they keep the reason, not the tracking URI, its host or a password."""

from __future__ import annotations

import re

TRACKING_STORE = "the tracking store"
_URL = re.compile(r"[A-Za-z][\w+.-]*://[^\s'\"<>]*[^\s'\"<>.,:;)]")  # without the punctuation after it
_USERINFO = re.compile(r"([A-Za-z][\w+.-]*://)[^/?#\s]*@")  # up to the netloc's last @


def _hostname(url: str) -> str:
    """'scheme://user:pw@Host:5000/path' -> 'host' ('' for a URI without a host, e.g. sqlite:///file.db)."""
    netloc = re.split(r"[/?#]", url.partition("://")[2], maxsplit=1)[0]
    host_port = netloc.rpartition("@")[2]
    host = host_port[1:].partition("]")[0] if host_port.startswith("[") else host_port.partition(":")[0]
    return host.lower()


def without_credentials(text: str) -> str:
    """`text` with no URL's user:password@ in it: fit for the service's log."""
    return _USERINFO.sub(r"\1", text)


def redact(text: str, tracking_uri: str) -> str:
    """`text` fit for a public endpoint: the tracking URI, any URL on its host and the host's name read "the
    tracking store", and no URL keeps its user:password@."""
    host = _hostname(tracking_uri)
    if host:  # every URL on the tracking host, then the host named alone (e.g. host='10.0.0.5')
        text = _URL.sub(lambda url: TRACKING_STORE if _hostname(url[0]) == host else url[0], text)
        text = re.sub(rf"(?<![\w./-]){re.escape(host)}(?![\w/-]|\.\w)", TRACKING_STORE, text, flags=re.IGNORECASE)
    return without_credentials(text.replace(tracking_uri, TRACKING_STORE) if tracking_uri else text)
