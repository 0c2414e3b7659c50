"""The study's web server: Streamlit's ASGI app around study/app.py, with two headers and one route less.

`spade-study serve` runs `streamlit run study/server.py`; Streamlit finds the `app` below (an
`st.App`) and serves it with uvicorn, taking the same `--server.*` options as before.

- No framing by other sites: every response carries `X-Frame-Options: DENY` and
  `Content-Security-Policy: frame-ancestors 'none'` (a page that frames the study could overlay
  it and steer a rater's clicks). Streamlit has no option for either.
- `/_stcore/metrics` is not public: it lists the server's sessions and caches to anyone
  (Streamlit has no option to turn it off), so it answers 404 here.
- Task pictures are served from `/study-picture/<hash>` (study/pictures.py): stable URLs that
  survive reruns and that the browser caches, instead of Streamlit's per-session media files.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Awaitable, Callable

import streamlit as st
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

# `streamlit run study/server.py` puts study/ on sys.path, not the repository root.
_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from study import pictures  # noqa: E402

FRAME_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
]
HIDDEN_PATHS = ("/_stcore/metrics",)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class StudyHeaders:
    """ASGI middleware: the anti-framing headers on every HTTP response; 404 for the hidden paths."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("path", "").rstrip("/").endswith(HIDDEN_PATHS):
            await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain"), *FRAME_HEADERS]})
            await send({"type": "http.response.body", "body": b"Not Found"})
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message = {**message, "headers": [*message.get("headers", []), *(h for h in FRAME_HEADERS if h[0] not in names)]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def picture(request: Request) -> Response:
    """A task picture published by the app (study/pictures.py); 404 for anything else."""
    found = pictures.lookup(request.path_params["pid"])
    if found is None:
        return PlainTextResponse("Not Found", status_code=404)
    data, mimetype = found
    # Content-addressed: the same URL always means the same bytes, so the browser may keep it.
    return Response(data, media_type=mimetype, headers={"Cache-Control": "private, max-age=86400, immutable"})


pictures.served = True
app = st.App(
    str(Path(__file__).resolve().parent / "app.py"),
    routes=[Route(pictures.ROUTE_PREFIX + "{pid:str}", picture, methods=["GET"])],
    middleware=[Middleware(StudyHeaders)],
)
