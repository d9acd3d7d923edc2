"""``speechlab view``: a read-only web application over the results database.

Security model (the lab's web UI had none):

- It listens on 127.0.0.1 unless told otherwise; another address is said on start, with what it
  exposes.
- Every request needs the token: generated on start and printed once (as Jupyter does), or taken
  from ``$SPEECHLAB_VIEW_TOKEN`` (then never printed). It may come as ``?token=`` (answered with a
  cookie for this port and a redirect to the same page without it), as that cookie, or as an
  ``Authorization: Bearer`` header. Anything else is answered 401, static files included.
- Nothing writes: the store is opened read-only (SQLite ``query_only``, PostgreSQL read-only
  transactions) and only GET and HEAD are routed; with ``--listening`` the rating pages of listening
  tests (``view.listening``) also take POSTs, each with a CSRF token, and write ratings only.
- Audio is served only as the file the database names for one utterance, and only when it is an
  existing regular file with an audio extension that soundfile reads (``data.playable``): the
  request names a row, never a path.
- Every value from a model, manifest or file name is escaped by Jinja's autoescape; JSON given to
  scripts goes through ``tojson``; a Content-Security-Policy allows only this server's own scripts.
- Flask and plotly (its JavaScript bundle, served from the installed package: no CDN) are the
  ``[view]`` extra, imported only when the viewer starts.
"""
from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, unquote_plus, urlencode

from .. import gate_report
from .._text import redact, terminal
from .._types import SpeechlabError
from ..metrics.stats import GatePolicy, format_rate, interval, number
from . import data
from . import listening as listening_pages

HERE = Path(__file__).resolve().parent
TOKEN_ENV = "SPEECHLAB_VIEW_TOKEN"
REFRESH_MS = 2000
NEEDS_EXTRA = "speechlab view needs the [view] extra: pip install 'pytest-speechlab[view]'"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "media-src 'self'; connect-src 'self'; font-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")


def redacted_request_line(line: str) -> str:
    """A request line with the token's value replaced by ***, the parameter's name read the way the
    application reads it (percent-decoded: ``?%74oken=`` is the token too)."""
    parts = line.split(" ")
    if len(parts) < 2 or "?" not in parts[1]:
        return line
    path, query = parts[1].split("?", 1)
    pairs = []
    for pair in query.split("&"):
        name = pair.split("=", 1)[0]
        pairs.append(f"{name}=***" if unquote_plus(name).strip() == "token" else pair)
    parts[1] = path + "?" + "&".join(pairs)
    return " ".join(parts)


def local_target(path: str, args: list[tuple[str, str]]) -> str:
    """The address of ``path`` on this host: one leading slash and the path percent-encoded (a tab,
    a backslash or a second slash that a browser would drop or read as "//" can never make it
    "//other.host/"), then the query."""
    return "/" + quote(path.lstrip("/\\\t\n\r "), safe="/") + ("?" + urlencode(args) if args else "")


def plotly_js() -> Path:
    """The plotly.js bundle inside the installed plotly package."""
    try:
        import plotly
    except ImportError:
        raise SpeechlabError(NEEDS_EXTRA) from None
    path = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise SpeechlabError(f"plotly {getattr(plotly, '__version__', '?')} has no package_data/plotly.min.js")
    return path


TREND_ROWS = 100  # the newest points each trend's table lists (its plot has them all)
COMPARISONS_KEPT = 32  # analyses of complete runs kept by a viewer process


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "-" if number(value) is None else format(number(value), spec)


def _ci(value: Any) -> str:
    ci = interval(value)
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


def _rate(k: Any, n: Any) -> str:
    return format_rate(k, n) if isinstance(k, int) and isinstance(n, int) and n else "-"


def create_app(open_store: Callable[[], Any], token: str, port_label: str = "", policy=None,
               listening: Callable[[], Any] | None = None):
    """The Flask application; ``open_store`` returns a read-only Store, opened once (on the first
    request) and shared by the server's threads: each query takes its own pooled connection, so a
    run in progress is read as it is now. ``policy`` is the regression gate's
    (``[tool.speechlab.regression]``), for the comparison page. ``listening``: the store ratings
    are written to, for the listening-test pages (``speechlab view --listening``; else none)."""
    policy = policy or GatePolicy()
    try:
        import flask
    except ImportError:
        raise SpeechlabError(NEEDS_EXTRA) from None
    from werkzeug.exceptions import HTTPException

    app = flask.Flask("pytest_speechlab.view", template_folder=str(HERE / "templates"),
                      static_folder=str(HERE / "static"), static_url_path="/static")
    app.config.update(MAX_CONTENT_LENGTH=16384 if listening else 1024, SEND_FILE_MAX_AGE_DEFAULT=3600)  # a rating's form
    app.jinja_env.autoescape = True
    app.jinja_env.filters.update(fmt=_fmt, ci=_ci, term=lambda v: terminal(v, one_line=False) if v is not None else "",
                                 rate=_rate)
    cookie = f"speechlab_view_{port_label or 'token'}"
    js = plotly_js()

    def authorized() -> bool:
        given = flask.request.cookies.get(cookie) or ""
        header = flask.request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            given = header[7:]
        given = flask.request.args.get("token") or given
        return bool(given) and hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))

    @app.before_request
    def check_token():
        rating = listening is not None and flask.request.path.startswith("/listen")
        if flask.request.method not in ("GET", "HEAD") and not (rating and flask.request.method == "POST"):
            return flask.Response("read-only: no write endpoint\n", 405, {"Allow": "GET, HEAD"}, mimetype="text/plain")
        if not authorized():
            return flask.Response("401: this viewer needs its token: open the address `speechlab view` printed, "
                                  f"or send the token set in ${TOKEN_ENV}\n", 401, mimetype="text/plain")
        if "token" in flask.request.args:  # trade the token in the address for a cookie
            args = [(k, v) for k, v in flask.request.args.items(multi=True) if k != "token"]
            response = flask.redirect(local_target(flask.request.path, args), 303)
            response.set_cookie(cookie, token, httponly=True, samesite="Strict", path="/")
            return response
        return None

    @app.after_request
    def headers(response):
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        if response.mimetype in ("text/html", "application/json"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(SpeechlabError)
    def problem(exc):
        return flask.render_template("problem.html", message=redact(str(exc)), title="Not found"), 404

    @app.errorhandler(HTTPException)
    def http_problem(exc):
        # the description is ours (an abort's reason) or Werkzeug's: never the request's text
        return flask.render_template("problem.html", message=f"{exc.code} {exc.name}: {exc.description}",
                                     title=exc.name), exc.code

    opened: list = []

    def store():
        if not opened:
            opened.append(open_store())
        return opened[0]

    def arg(name: str, limit: int = 400) -> str:
        value = flask.request.args.get(name, "")
        return value[:limit] if isinstance(value, str) else ""

    @app.get("/")
    def runs_page():
        return flask.render_template("runs.html", title="Runs", view=data.runs(
            store(), model=arg("model"), dataset=arg("dataset"), status=arg("status"), commit=arg("commit")))

    @app.get("/runs/<run_id>")
    def run_page(run_id: str):
        view = data.run(store(), store().resolve(run_id[:64]))
        return flask.render_template("run.html", title=f"Run {view['run']['id'][:8]}", view=view, refresh_ms=REFRESH_MS)

    @app.get("/api/runs/<run_id>/progress")
    def progress(run_id: str):
        return flask.jsonify(data.live(store(), store().resolve(run_id[:64])))

    @app.get("/runs/<run_id>/evaluation")
    def evaluation_page(run_id: str):
        try:
            page = int(arg("page", 8) or 1)
        except ValueError:
            page = 1
        view = data.evaluation(store(), store().resolve(run_id[:64]), arg("model", 2000), arg("dataset", 4000),
                               sort=arg("sort", 20) or "errors", page=page, slice_field=arg("field", 200),
                               slice_value=arg("value", 400))
        return flask.render_template("evaluation.html", title=f"{view['model']} on {view['dataset']}", view=view)

    @app.get("/audio")
    def audio():
        path = data.audio_file(store(), arg("run", 64), arg("model", 2000), arg("dataset", 4000), arg("id", 4000))
        if path is None:
            return flask.Response("404: no servable audio for this utterance\n", 404, mimetype="text/plain")
        mime = data.AUDIO_TYPES[path.suffix.lower().lstrip(".")]
        return flask.send_file(path, mimetype=mime, conditional=True, download_name=f"audio{path.suffix.lower()}")

    comparisons: OrderedDict = OrderedDict()  # (run a, run b) -> the analysis, for runs that are complete

    def compared(a: str, b: str) -> dict:
        """The gate's analysis of two runs: the same two complete runs give the same analysis, so the
        last COMPARISONS_KEPT are kept (its simulation of the minimum detectable effect costs about
        0.2 s per figure, whatever the history's size)."""
        key = (store().resolve(a), store().resolve(b))
        if key in comparisons:
            comparisons.move_to_end(key)
            return comparisons[key]
        view = data.comparison(store(), key[0], key[1], policy)
        if view["a"]["status"] == view["b"]["status"] == "complete":
            comparisons[key] = view
            while len(comparisons) > COMPARISONS_KEPT:
                comparisons.popitem(last=False)
        return view

    @app.get("/compare")
    def compare_page():
        a, b = arg("a", 64), arg("b", 64)
        listing = data.run_choices(store())
        view = compared(a, b) if a and b else None
        return flask.render_template("compare.html", title="Compare runs", view=view, runs=listing, a=a, b=b,
                                     header=gate_report.HEADER)

    @app.get("/trends")
    def trends_page():
        view = data.trends(store(), metric=arg("metric", 40) or "wer", model=arg("model"), dataset=arg("dataset"))
        listing = data.names(store())
        return flask.render_template("trends.html", title="Trends", view=view, models=listing["models"],
                                     datasets=listing["datasets"], rows=TREND_ROWS)

    @app.get("/static/plotly.min.js")
    def plotly():
        return flask.send_file(js, mimetype="text/javascript", conditional=True, max_age=86400)

    app.context_processor(lambda: {"listening": listening is not None})
    if listening is not None:
        rated: list = []

        def ratings_store():
            if not rated:
                rated.append(listening())
            return rated[0]

        listening_pages.register(app, flask, ratings_store, port_label)
    return app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(open_store: Callable[[], Any], host: str, port: int, echo: Callable[[str], None], policy=None,
          reveal: Callable[[str], None] | None = None, listening: Callable[[], Any] | None = None) -> None:
    """Start the viewer and serve until interrupted. ``echo`` prints (redacting credentials);
    ``reveal`` prints the address with the generated token, once (default: ``echo``)."""
    reveal = reveal or echo
    from werkzeug.serving import WSGIRequestHandler, make_server

    class RequestLog(WSGIRequestHandler):
        """One line per request, as werkzeug logs it, but with the token in an address replaced by
        *** and the request line's control characters shown as escapes (it is the client's text)."""

        def log_request(self, code="-", size="-") -> None:
            line = redacted_request_line(str(self.requestline))
            self.log("info", "%s", terminal(f'"{line}" {code} {size}', one_line=True))

    given = os.environ.get(TOKEN_ENV, "")
    token = given or secrets.token_urlsafe(32)
    ratings = listening() if listening is not None else None  # opened (and migrated) first, then read
    store = open_store()  # a missing or unreadable database is said before anything listens
    # the port first (0: any free one), for the cookie's name
    server = make_server(host, port, None, threaded=True, request_handler=RequestLog)
    server.app = create_app(lambda: store, token, port_label=str(server.server_port), policy=policy,
                            listening=(lambda: ratings) if ratings is not None else None)
    shown_host = f"[{host}]" if ":" in host else host
    base = f"http://{shown_host}:{server.server_port}/"
    if given:
        echo(f"speechlab view: {base} (read-only; the token is the one in ${TOKEN_ENV})")
    else:
        reveal(f"speechlab view: {base}?token={token}")  # the one place the token is printed
        echo(f"  read-only; every request needs this token (set ${TOKEN_ENV} to choose it)")
    if listening is not None:
        echo(f"  listening tests: {base}listen (ratings are written to the results database)")
    if not is_loopback(host):
        echo(f"  WARNING: listening on {host}, not 127.0.0.1: any machine that reaches this address and has the "
             "token can read every result, transcript and audio file in the database, over plain HTTP "
             "(put a TLS proxy in front for anything but a trusted network)")
    echo("  Ctrl+C stops it")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
