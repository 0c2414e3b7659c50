"""Task pictures at stable, content-addressed URLs, served by study/server.py's own route.

Why not `st.image`: Streamlit keeps each picture in its media manager per session and releases
it when the session's next run ends. The minimum viewing time reruns a task page once, so a
browser that had not fetched a picture yet (a loaded server, a slow phone) got a 404 and showed
a broken picture; every run also re-hashed and re-registered the same bytes. Here a picture is
published once per process under the hash of its bytes and stays (LRU-bounded): every rater
and every rerun reuse the same URL, and the browser caches it.

Only published bytes can be fetched (the URL names a hash, not a file), so this opens no path
into the bundle; a picture URL reveals nothing but that picture.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

ROUTE_PREFIX = "/study-picture/"
MAX_PICTURES = 4096  # ~4096 x 40 kB = 160 MB at most; the LRU drops the least recently shown

_lock = threading.Lock()
_store: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
served = False  # set by study/server.py once its route is installed (else the app falls back to st.image)


def mimetype_of(data: bytes) -> str:
    """image/png or image/jpeg, from the bytes' signature."""
    return "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"


def publish(data: bytes) -> str:
    """Keep `data` and return the URL path it is served at."""
    pid = hashlib.sha256(data).hexdigest()[:40]
    with _lock:
        if pid in _store:
            _store.move_to_end(pid)
        else:
            _store[pid] = (data, mimetype_of(data))
            while len(_store) > MAX_PICTURES:
                _store.popitem(last=False)
    return ROUTE_PREFIX + pid


def lookup(pid: str) -> tuple[bytes, str] | None:
    """The bytes and mimetype published under `pid`, or None."""
    with _lock:
        return _store.get(pid)
