"""The console as an ASGI app (Starlette), with ``/healthz`` and ``/metrics`` beside it.

Routes, each page beside its JSON twin (``/api`` + the same path, or ``?format=json``):

| page                          | data                                 |
|-------------------------------|--------------------------------------|
| ``/``                         | ``views.traits_list``                |
| ``/traits/{name}?page=N``     | ``views.trait_detail``               |
| ``/runs/{run_id}?page=N``     | ``views.run_detail``                 |
| ``/profiles/{id}?trait=T``    | ``views.profile`` (``/profiles?id=`` from the search box) |
| ``/search?q=…``               | ``views.search``                     |

GET (and HEAD) only: anything else is 405. Unknown traits, runs and ids are 404. Every page
is rendered from the dict its view returns, and every JSON body goes through the redactor.
The views read the state store with blocking calls, so they run in worker threads, a few at a
time (``PAGE_THREADS``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from traits import __version__
from traits.config.env import redact
from traits.console import chart, views
from traits.console.auth import HOW_TO_ENABLE, Access
from traits.errors import TraitsError

log = logging.getLogger("traits.console")

HERE = Path(__file__).parent
#: content type of the Prometheus text exposition format
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: paths served without credentials
OPEN_PATHS = ("/healthz", "/metrics")

#: worker threads for the pages (the default is 40): in the daemon they share the GIL with the
#: scheduler's threads, and a few are enough to keep a busy console from delaying a due run;
#: /healthz and /metrics have a thread of their own, so a probe never waits behind pages
PAGE_THREADS = 2

Health = Callable[[], tuple[bool, dict[str, Any]]]
Metrics = Callable[[], bytes]


class _Redacted(JSONResponse):
    def render(self, content: Any) -> bytes:
        return redact(json.dumps(content, ensure_ascii=False, default=str, separators=(",", ":"))).encode()


class AccessGuard:
    """ASGI middleware: ``/healthz`` and ``/metrics`` always, the rest as ``Access`` allows."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if not self.access.enabled:
            await PlainTextResponse(HOW_TO_ENABLE + "\n", status_code=403)(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        authorization = headers.get(b"authorization", b"").decode("latin-1") or None
        if not self.access.allows(authorization):
            challenge = {"WWW-Authenticate": 'Basic realm="sql-traits console", charset="UTF-8"'} if self.access.password else {}
            await PlainTextResponse("credentials required: see the README's Console section\n", status_code=401, headers=challenge)(
                scope, receive, send
            )
            return
        await self.app(scope, receive, send)


def _int(request: Request, name: str, default: int = 1) -> int:
    try:
        return max(1, int(request.query_params.get(name, default)))
    except ValueError:
        return default


def create_app(console: views.Console | None, access: Access, health: Health | None = None, metrics: Metrics | None = None) -> ASGIApp:
    """The app; without a ``console`` it serves only ``/healthz`` and ``/metrics``."""
    pages, probes = CapacityLimiter(PAGE_THREADS), CapacityLimiter(1)

    async def in_thread(limiter: CapacityLimiter, fn: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(partial(fn, *args), limiter=limiter)

    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.globals.update(version=__version__, legend=chart.legend())
    env.filters.update(when=_when, short=_short, num=_num, secs=_secs, pretty=_pretty, urlquote=lambda s: quote(str(s), safe=""))

    def page(view: Callable[[Request], dict[str, Any]], template: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            as_json = request.url.path.startswith("/api/") or request.query_params.get("format") == "json"
            try:
                data = await in_thread(pages, view, request)
            except views.NotFound as e:
                if as_json:
                    return _Redacted({"error": str(e)}, status_code=404)
                return templates.TemplateResponse(request, "error.html", {"title": "Not found", "error": redact(str(e))}, status_code=404)
            except TraitsError as e:
                log.warning("console: %s", e)
                if as_json:
                    return _Redacted({"error": str(e)}, status_code=503)
                return templates.TemplateResponse(request, "error.html", {"title": "Unavailable", "error": redact(str(e))}, status_code=503)
            if as_json:
                return _Redacted(data)
            # the template sees the JSON twin's data, redacted the same way
            safe = json.loads(redact(json.dumps(data, default=str)))
            return templates.TemplateResponse(request, template, {"data": safe, "json_url": _json_url(request)})

        return endpoint

    def _console() -> views.Console:
        assert console is not None  # the page routes exist only with a console
        return console

    def traits_view(request: Request) -> dict[str, Any]:
        return views.traits_list(_console())

    def trait_view(request: Request) -> dict[str, Any]:
        data = views.trait_detail(_console(), request.path_params["name"], _int(request, "page"))
        if not request.url.path.startswith("/api/"):
            data = {**data, "chart_svg": chart.render(data["chart"])}
        return data

    def run_view(request: Request) -> dict[str, Any]:
        return views.run_detail(_console(), request.path_params["run_id"], _int(request, "page"))

    def profile_view(request: Request) -> dict[str, Any]:
        identity = request.path_params.get("identity") or request.query_params.get("id", "")
        if not identity.strip():
            raise views.NotFound("look up an id: type a user_id or group_id in the search box")
        return views.profile(_console(), identity.strip(), request.query_params.get("trait") or None)

    def search_view(request: Request) -> dict[str, Any]:
        return views.search(_console(), request.query_params.get("q", ""))

    search_page = page(search_view, "search.html")

    async def search_endpoint(request: Request) -> Response:
        as_json = request.url.path.startswith("/api/") or request.query_params.get("format") == "json"
        q = request.query_params.get("q", "").strip()
        if not as_json and q:
            data = await in_thread(pages, search_view, request)
            if data["exact_trait"]:
                return RedirectResponse(f"/traits/{quote(q, safe='')}", status_code=303)
            if data["run"]:
                return RedirectResponse(f"/runs/{quote(q, safe='')}", status_code=303)
            if not data["traits"]:
                return RedirectResponse(f"/profiles/{quote(q, safe='')}", status_code=303)
        return await search_page(request)

    async def healthz(request: Request) -> Response:
        if health is None:
            return _Redacted({"status": "ok", "console": True})
        healthy, body = await in_thread(probes, health)
        return _Redacted(body, status_code=200 if healthy else 503)

    async def metrics_endpoint(request: Request) -> Response:
        if metrics is None:
            return PlainTextResponse("not found: this console runs without a daemon, so it has no metrics\n", status_code=404)
        return Response(await in_thread(probes, metrics), media_type=METRICS_CONTENT_TYPE)

    async def not_found(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api/"):
            return _Redacted({"error": f"not found: {request.url.path}"}, status_code=404)
        return templates.TemplateResponse(request, "error.html", {"title": "Not found", "error": f"no page at {request.url.path}"}, status_code=404)

    routes: list[Route | Mount] = []
    for prefix in ("", "/api") if console is not None else ():
        routes += [
            Route(f"{prefix}/" if not prefix else f"{prefix}/traits", page(traits_view, "traits.html"), methods=["GET"]),
            Route(f"{prefix}/traits/{{name}}", page(trait_view, "trait.html"), methods=["GET"]),
            Route(f"{prefix}/runs/{{run_id}}", page(run_view, "run.html"), methods=["GET"]),
            Route(f"{prefix}/profiles", page(profile_view, "profile.html"), methods=["GET"]),
            Route(f"{prefix}/profiles/{{identity:path}}", page(profile_view, "profile.html"), methods=["GET"]),
            Route(f"{prefix}/search", search_endpoint, methods=["GET"]),
        ]
    routes += [
        *([Route("/api", page(traits_view, "traits.html"), methods=["GET"])] if console is not None else []),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_found})
    return AccessGuard(app, access)


def _json_url(request: Request) -> str:
    path = request.url.path
    query = str(request.url.query)
    return "/api" + (path if path != "/" else "/traits") + (f"?{query}" if query else "")


# -- template filters ------------------------------------------------------------------------
def _when(value: Any) -> str:
    if not value:
        return "-"
    return str(value).replace("T", " ")[:19] + " UTC"


def _short(value: Any) -> str:
    """A time in a table cell: month-day hour:minute (UTC)."""
    return str(value).replace("T", " ")[5:16] if value else "-"


def _num(value: Any) -> str:
    if value is None:
        return "-"
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


def _secs(value: Any) -> str:
    if value is None:
        return "-"
    seconds = float(value)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
