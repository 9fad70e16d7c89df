"""`--metrics-listen`: Prometheus's scrape endpoint, on the sidecar's own HTTP server.

prometheus-client's `start_http_server` gives every connection a thread of
its own and reads a request with no deadline: each connection left open with
half a request held a thread for as long as the client liked, and a
five-connection accept backlog kept real scrapes waiting behind them. Here
the registry's WSGI app (the same answer: text or OpenMetrics as asked,
gzip, `name[]` filters) is served by `HttpServer`, which holds slow and idle
connections in its event loop under the same deadlines and connection limit
as the view API, and answers on two threads.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, make_wsgi_app

from msgarchive_server import addresses
from msgarchive_server.edge.httpserver import HttpServer, Limits

# A scrape is a GET with no body; two at once are plenty.
_LIMITS = Limits(max_body_bytes=1024, threads=2)


def _refusal(status: int, message: str) -> bytes:
    return f"{status} {message}\n".encode()


def metrics_listener(address: str, registry: CollectorRegistry) -> HttpServer:
    """/metrics (any path) for `registry` on HOST:PORT, bound now (OSError if
    it cannot be) and served once started."""
    where = addresses.parse(address, unix=False)
    return HttpServer(
        where,
        make_wsgi_app(registry),
        _refusal,
        limits=_LIMITS,
        refusal_type="text/plain; charset=utf-8",
    )
