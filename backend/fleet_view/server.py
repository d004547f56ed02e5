"""The fleet view and /metrics over HTTP (Starlette, served by uvicorn).

    daozhang backend run --config backend.toml --workers 2 --http 127.0.0.1:8080

    GET /                   the fleet page (live: the panel is fetched again every REFRESH_S)
    GET /panel              the panel alone (HTML)
    GET /api/overview       the same numbers as JSON (stats = `backend stats --json`)
    GET /terminal/<id>      one terminal: last checkpoint, alerts, reconciliation
    GET /api/terminal/<id>  the same as JSON
    GET /metrics            Prometheus text: every worker's counters and the lag histogram

It runs in a thread of the supervisor with its own store connection, so
it never slows a worker.  The overview is computed at most once per
CACHE_S however many browsers poll: its queries grow with the fleet's
receipts (docs/DESIGN.md "Fleet view"), the workers' reply path does not.
"""

import threading
import time

from daozhang.backend.fleet_view import pages
from daozhang.backend.fleet_view.queries import FleetQueries
from daozhang.backend.fleet_view.status_board import StatusBoard

REFRESH_S = 2.0
CACHE_S = 1.0


def now_ms():
    return time.time_ns() // 1000000


class FleetView:
    def __init__(self, store, board, supervisor=None, silent_after_s=300.0,
                 overdue_after_s=2 * 86400.0, refresh_s=REFRESH_S):
        self.queries = FleetQueries(store, silent_after_s * 1000, overdue_after_s * 1000)
        self.board = board
        self.supervisor = supervisor
        self.refresh_s = refresh_s
        self._cache = (0.0, None)
        self._lock = threading.Lock()

    def overview(self):
        with self._lock:
            at, value = self._cache
            if value is None or time.monotonic() - at >= CACHE_S:
                value = self.queries.overview(now_ms(), self.board.snapshot())
                self._cache = (time.monotonic(), value)
            return value

    def terminal(self, device_id):
        return self.queries.terminal(device_id, now_ms(), self.board.snapshot())

    def app(self):
        from starlette.applications import Starlette
        from starlette.responses import HTMLResponse, JSONResponse, Response
        from starlette.routing import Route

        def fleet(request):
            return HTMLResponse(pages.fleet_page(self.overview(), self.refresh_s))

        def panel(request):
            return HTMLResponse(pages.panel_html(self.overview()))

        def api_overview(request):
            return JSONResponse(self.overview())

        def _terminal(request):
            found = self.terminal(request.path_params["device_id"])
            if found is None:
                return None, HTMLResponse("<p>no such terminal</p>", status_code=404)
            return found, None

        def terminal(request):
            found, missing = _terminal(request)
            return missing or HTMLResponse(pages.terminal_page(found))

        def api_terminal(request):
            found, missing = _terminal(request)
            return missing or JSONResponse(found)

        def metrics(request):
            from daozhang.backend.metrics import exposition
            alive = self.supervisor.alive() if self.supervisor is not None else None
            body, content_type = exposition(alive)
            return Response(body, media_type=content_type)

        return Starlette(routes=[
            Route("/", fleet), Route("/panel", panel), Route("/api/overview", api_overview),
            Route("/terminal/{device_id}", terminal), Route("/api/terminal/{device_id}", api_terminal),
            Route("/metrics", metrics)])


def parse_address(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        from daozhang.agent.core.errors import LocalError
        raise LocalError("--http %r: expected HOST:PORT, e.g. 127.0.0.1:8080" % text)
    return host, int(port)


def serve_in_thread(address, config, supervisor=None, silent_after_s=300.0,
                    overdue_after_s=2 * 86400.0):
    """Start the HTTP server in a daemon thread; log `http_ready url=...`."""
    import os
    import uvicorn
    from daozhang.backend.store import open_store

    host, port = parse_address(address)
    if supervisor is not None:
        # /metrics reads the workers' files from the supervisor's directory.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = supervisor.metrics_dir
    log = supervisor.log if supervisor is not None else (lambda *a, **k: None)
    store = open_store(config["backend"]["db"])
    board = StatusBoard(config["broker"], log).start()
    view = FleetView(store, board, supervisor, silent_after_s, overdue_after_s)
    server = uvicorn.Server(uvicorn.Config(view.app(), host=host, port=port, log_level="warning",
                                           access_log=False))

    def run():
        server.run()

    thread = threading.Thread(target=run, name="fleet-view", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)     # uvicorn reports readiness only through this flag
    if not server.started:
        raise OSError("fleet view: cannot serve on %s (port taken?)" % address)
    bound = server.servers[0].sockets[0].getsockname()
    log("http_ready", url="http://%s:%d/" % (bound[0], bound[1]))
    return server
