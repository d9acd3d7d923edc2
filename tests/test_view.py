"""`speechlab view` in a real browser (Playwright driving headless Chromium), over a database
filled by real pytest-speechlab runs: three commits run out of order (the trend goes in commit
order), a run with the regression gate against a baseline, a run with hostile values in every
field, and a run watched while it is in progress. axe-core (from the npm registry, .ci/run installs
it) checks every page; the keyboard alone drives each page.

Without Chromium, Playwright or axe-core these tests skip, saying why, except under CI (CI=true),
where a missing browser is a failure."""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from helpers import REPO, write_audio, write_manifest
from test_reports import EVERYWHERE_CONFTEST, PAYLOAD

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
AXE = Path(os.environ.get("SPEECHLAB_AXE_JS") or REPO / ".ci" / "node" / "node_modules" / "axe-core" / "axe.min.js")
TOKEN = "view-test-token-0123456789"
SHOTS = os.environ.get("SPEECHLAB_VIEW_SHOTS")  # a folder: each page's screenshot is saved there

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the [test] extra has it
    sync_playwright = None

MISSING = ("no Chromium (apt-get install chromium)" if CHROMIUM is None else
           "no Playwright (pip install playwright)" if sync_playwright is None else
           f"no axe-core at {AXE} (npm install axe-core, or set SPEECHLAB_AXE_JS)" if not AXE.is_file() else None)
if MISSING and os.environ.get("CI"):
    raise RuntimeError(f"the viewer's browser tests cannot run in CI: {MISSING}")
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")

CONFTEST = '''
import json, os, time
from pathlib import Path
from pytest_speechlab import hookimpl, Transcript, Segment

HERE = Path(__file__).parent


class Tracked:
    sample_rate = 16000

    def __init__(self, params):
        self.texts = json.loads((HERE / "texts.json").read_text())
        self.delay = float(params.get("delay", 0))

    def transcribe(self, audio):
        time.sleep(self.delay)
        seconds = len(audio) / self.sample_rate
        text = self.texts.get(f"{seconds:.2f}", "")
        return Transcript(text, (Segment(0.0, seconds, text),))

    def info(self):
        return {"threads": 1, "device": "cpu", "backend_version": "fake 1.0", "languages": ["en"],
                "decode": {"beam_size": int(os.environ.get("TRACKED_BEAM", "5"))}}


@hookimpl
def speechlab_register_models(register):
    register("fake/tracked", task="asr", load=Tracked, backend="fake", weights="none", params={})
    register("fake/slow", task="asr", load=Tracked, backend="fake", weights="none", params={"delay": 0.3})
'''
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
CLIPS = [(f"u{i}", 1.0 + 0.25 * i, f"{WORDS[i]} {WORDS[(i + 1) % 8]} {WORDS[(i + 2) % 8]}") for i in range(8)]
# the model's transcripts at each commit: A exact, B one word wrong, C three words wrong
COMMITS = [("A", "2026-01-01T10:00:00+00:00", {}), ("B", "2026-01-02T10:00:00+00:00", {"u1": "bravo xray delta"}),
           ("C", "2026-01-03T10:00:00+00:00", {"u1": "bravo xray delta", "u2": "charlie", "u5": "foxtrot golf"})]
RUN_ORDER = ["B", "A", "C", "D"]  # the runs start in this order: the trend must still go A, B, C, D
# D: commit C again, with the decode setting changed (beam 1): the trend marks the change


def _git(root: Path, *args: str, date: str | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org"}
    if date:
        env.update(GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True).stdout.strip()


def _pytest(root: Path, db: Path, *args: str, wait: bool = True):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("CI", None)
    command = [sys.executable, "-m", "pytest", "suites", "-q", "-p", "no:cacheprovider", "--speechlab-db", str(db),
               "--speechlab-cache", "off", "--speechlab-progress", "off", *args]
    if not wait:
        return subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)


def _speechlab(db: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest_speechlab.cli", "--db", str(db), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def _project(root: Path, clips, suites=("test_asr_accuracy.py", "test_hallucination.py", "test_inputs.py",
                                         "test_regression.py", "test_readiness.py")) -> None:
    (root / "suites").mkdir(parents=True)
    for suite in suites:
        (root / "suites" / suite).write_text((REPO / "suites" / suite).read_text())
    (root / "conftest.py").write_text(CONFTEST)
    (root / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\naddopts = "--import-mode=importlib"\nspeechlab_models = ["fake/tracked"]\n'
        'speechlab_datasets = ["data/manifest.jsonl"]\n[tool.speechlab.thresholds]\nwer = 0.5\ncer = 0.5\nrtf = 100.0\n')
    for uid, seconds, _ in clips:
        write_audio(root / "data" / f"{uid}.wav", seconds)
    write_audio(root / "data" / "quiet.wav", 1.1, level=0.0)
    write_manifest(root / "data" / "manifest.jsonl", [{"id": uid, "audio": f"{uid}.wav", "text": text}
                                                      for uid, _, text in clips]
                   + [{"id": "quiet", "audio": "quiet.wav", "kind": "nonspeech"}])


def _texts(clips, wrong: dict) -> str:
    return json.dumps({f"{seconds:.2f}": wrong.get(uid, text) for uid, seconds, text in clips})


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """The database: runs at three commits (started B, A, C), a baseline and the gate, a hostile
    run, and an imported run whose 'audio' is a file outside any dataset."""
    base = tmp_path_factory.mktemp("view")
    db = base / "results.db"
    root = base / "project"
    _project(root, CLIPS)
    _git(root, "init", "-q")
    commits = {}
    for name, date, wrong in COMMITS:
        (root / "texts.json").write_text(_texts(CLIPS, wrong))
        _git(root, "add", "-A")
        _git(root, "commit", "-q", "-m", name, date=date)
        commits[name] = _git(root, "rev-parse", "HEAD")
    runs = {}
    for name in RUN_ORDER:
        _git(root, "checkout", "-q", commits["C" if name == "D" else name])
        extra = ("--speechlab-baseline", "main") if name in "CD" else ()
        os.environ["TRACKED_BEAM"] = "1" if name == "D" else "5"
        try:
            out = _pytest(root, db, *extra)
        finally:
            os.environ.pop("TRACKED_BEAM")
        assert out.returncode in (0, 1), out.stdout[-3000:]
        runs[name] = re.search(r"recorded as run ([0-9a-f-]{36})", out.stdout).group(1)
        if name == "A":
            assert _speechlab(db, "baseline", "set", "main", runs["A"], cwd=root).returncode == 0
    # hostile values in every field a model, a manifest or a file name can set
    evil = base / "evil"
    (evil / "suites").mkdir(parents=True)
    for suite in ("test_asr_accuracy.py", "test_hallucination.py", "test_inputs.py"):
        (evil / "suites" / suite).write_text((REPO / "suites" / suite).read_text())
    (evil / "conftest.py").write_text(EVERYWHERE_CONFTEST.replace("PAYLOAD_REPR", repr(PAYLOAD)))
    (evil / "pyproject.toml").write_text('[tool.pytest.ini_options]\naddopts = "--import-mode=importlib"\n')
    folder = evil / f"data{PAYLOAD.replace('/', '')}"
    audio = f"clip{PAYLOAD.replace('/', '')}.wav"
    write_audio(folder / audio, 1.0)
    write_audio(folder / "two.wav", 1.5)
    write_manifest(folder / "m.jsonl", [{"id": "id" + PAYLOAD, "audio": audio, "text": "ref " + PAYLOAD},
                                        {"id": "ns" + PAYLOAD, "audio": "two.wav", "kind": "nonspeech"}])
    out = _pytest(evil, db, "--speechlab-model", "evil/" + PAYLOAD, "--speechlab-dataset", str(folder / "m.jsonl"))
    runs["evil"] = re.search(r"recorded as run ([0-9a-f-]{36})", out.stdout).group(1)
    # an imported run whose rows name files that are not audio: never served
    export = json.loads(_speechlab(db, "export", runs["A"], cwd=root).stdout)
    export["run"]["id"] = "imported-" + runs["A"][:20]
    secret = base / "secret.wav"
    secret.write_text("not audio: a secret")
    for i, u in enumerate(export["run"]["utterances"]):
        u["audio_path"] = ["/etc/passwd", str(secret), str(base / "project" / ".." / "project" / "conftest.py")][i % 3]
    (base / "export.json").write_text(json.dumps(export))
    assert _speechlab(db, "import", str(base / "export.json"), cwd=root).returncode == 0
    runs["imported"] = export["run"]["id"]
    return {"db": db, "root": root, "runs": runs, "commits": commits, "base": base, "evil_folder": folder}


class Viewer:
    def __init__(self, db: Path, cwd: Path, token: str | None = TOKEN, host: str = "127.0.0.1", extra=()):
        env = {**os.environ}
        env.pop("SPEECHLAB_VIEW_TOKEN", None)
        if token:
            env["SPEECHLAB_VIEW_TOKEN"] = token
        self.process = subprocess.Popen([sys.executable, "-m", "pytest_speechlab.cli", "--db", str(db), "view", "--host",
                                         host, "--port", "0", *extra], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.lines = []
        while True:
            line = self.process.stdout.readline()
            assert line, "speechlab view exited: " + "".join(self.lines)
            self.lines.append(line)
            if "Ctrl+C" in line:
                break
        self.url = re.search(r"(http://\S+?/)(\?token=(\S+))?(\s|$)", self.lines[0]).group(1)
        self.printed_token = re.search(r"\?token=(\S+)", self.lines[0])
        self.port = int(re.search(r":(\d+)/", self.url).group(1))

    def get(self, path: str, token: str | None = TOKEN, method: str = "GET", cookie: str | None = None):
        """A raw request (the path is sent as it is, not normalized)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if cookie:
            headers["Cookie"] = cookie
        conn.request(method, path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        conn.close()
        return response.status, dict(response.getheaders()), body

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=20)


@pytest.fixture(scope="module")
def viewer(history):
    v = Viewer(history["db"], history["root"])
    yield v
    v.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        yield b
        b.close()


@pytest.fixture
def page(browser, viewer):
    """A page that has the viewer's cookie (through ?token=, as a user opening the printed address).
    CSP is bypassed only so that axe-core can be injected: escaping alone must keep hostile values inert."""
    context = browser.new_context(bypass_csp=True, viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.goto(viewer.url + "?token=" + TOKEN)
    assert "token=" not in pg.url  # traded for a cookie
    yield pg
    context.close()


def axe(page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       targets: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    return [v for v in found if v["impact"] in ("serious", "critical")]


def visit(page, viewer, path: str, shot: str) -> None:
    response = page.goto(viewer.url.rstrip("/") + path)
    assert response.status == 200, (path, response.status)
    page.wait_for_load_state("networkidle")
    assert not axe(page), (path, axe(page))
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{shot}.png"), full_page=True)


def q(value: str) -> str:
    return quote(value, safe="")


def test_each_page_renders_and_passes_axe(page, viewer, history):
    runs = history["runs"]
    visit(page, viewer, "/", "runs")
    assert page.locator("table.runs tbody tr").count() == len(runs)
    assert page.locator("tr", has_text=runs["C"][:8]).locator(".gate").inner_text() == "passed"  # the gate ran
    assert page.locator("tr", has_text=runs["A"][:8]).locator(".gate").inner_text() == "not run"
    assert "main" in page.locator("tr", has_text=runs["A"][:8]).inner_text()  # the baseline
    visit(page, viewer, f"/runs/{runs['C']}", "run")
    assert page.locator("table.scorecard tbody tr").count() == 1
    assert "[" in page.locator("table.scorecard tbody tr").first.inner_text()  # intervals shown
    assert page.locator(".grades li").count() == 1
    visit(page, viewer, f"/runs/{runs['C']}/evaluation?model=fake%2Ftracked&dataset=data%2Fmanifest.jsonl&sort=errors", "evaluation")
    first = page.locator("table.utterances tbody tr").first
    assert "u1" in first.inner_text() or "u2" in first.inner_text()  # most errors first
    assert first.locator(".sub").count() + first.locator(".del").count() > 0  # aligned
    assert page.locator("audio").count() == len(CLIPS) + 1
    visit(page, viewer, f"/compare?a={runs['A']}&b={runs['C']}", "compare")
    worse = page.locator("table.worse tbody tr")
    assert worse.count() == 3 and "xray" in page.locator("table.worse").inner_text()
    visit(page, viewer, "/trends?metric=wer", "trends")
    assert page.locator(".plot .main-svg").count() >= 1  # plotly drew it (served by the viewer, no CDN)
    visit(page, viewer, f"/runs/{runs['evil']}", "hostile-run")


def test_the_trend_has_one_point_per_run_in_commit_order(page, viewer, history):
    page.goto(viewer.url + "trends?metric=wer&model=fake%2Ftracked")
    page.wait_for_function("document.querySelector('.plot').dataset.points !== undefined")
    section = page.locator("section.trend", has_text="fake/tracked on data/manifest.jsonl")
    rows = section.locator("table.trend-table tbody tr")
    assert rows.count() == 5  # the runs at A, B, C and C with beam 1, and the import of A's run
    commits = [rows.nth(i).locator("code").inner_text() for i in range(5)]
    assert commits == [history["commits"][c][:10] for c in ("A", "A", "B", "C", "C")]  # commit order, not run order
    wers = [float(rows.nth(i).locator("td").nth(4).inner_text().split()[0]) for i in range(5)]
    assert wers[0] == wers[1] == 0.0 and wers[1] < wers[2] < wers[3]
    assert sum("★ main" in rows.nth(i).inner_text() for i in range(2)) == 1  # the baseline marked
    changes = [rows.nth(i).locator("td.changes").inner_text() for i in range(5)]
    assert changes == ["", "", "", "", "◆ beam_size 5 -> 1"]  # what changed, where it changed
    assert "against main" in rows.nth(3).inner_text()  # the gated runs link to their comparisons
    assert rows.nth(3).locator("a", has_text="against main").get_attribute("href").startswith("/compare?a=")
    plot = section.locator(".plot")
    assert plot.get_attribute("data-points") == "5" and plot.get_attribute("data-changes") == "1"
    assert section.locator(".plot .scatterlayer .point").count() == 5
    label = plot.get_attribute("aria-label")  # the plot's text equivalent
    assert plot.get_attribute("role") == "img" and "across 5 runs" in label and "from 0.000" in label


def test_a_run_shows_its_models_and_links_its_gate_to_the_comparison(page, viewer, history):
    runs = history["runs"]
    visit(page, viewer, f"/runs/{runs['D']}", "run-identity")
    model = page.locator("table.models tbody tr").first.inner_text()
    assert "fake/tracked" in model and "fake fake 1.0" in model and "beam_size=1" in model and "cpu" in model
    link = page.locator("table.scorecard a", has_text="against main")
    verdict = link.inner_text().split()[0]
    link.click()
    page.wait_for_load_state("networkidle")
    assert f"a={runs['A']}" in page.url and f"b={runs['D']}" in page.url
    assert "Model identity changed: beam_size 5 -> 1" in page.locator("section.pair").inner_text()
    headline = page.locator("section.pair .headline").inner_text()
    assert headline.startswith("REGRESSION" if verdict == "regressed" else "not judged")  # the same verdict
    assert "too few to judge (n = 8 < 10)" in headline or "REGRESSION" in headline  # never a bare "no regression"


WIDTHS = (375, 1024, 1440)  # a phone, a small laptop, a desktop


@pytest.mark.parametrize("width", WIDTHS)
def test_every_page_fits_the_width_of_a_phone_a_laptop_and_a_desktop(browser, viewer, history, width):
    """No horizontal overflow of the page at any width (wide tables scroll inside their own box), the
    scorecard's columns stay readable (not one letter wide), and axe-core finds no violation."""
    runs = history["runs"]
    context = browser.new_context(bypass_csp=True, viewport={"width": width, "height": 900})
    pg = context.new_page()
    pg.goto(viewer.url + "?token=" + TOKEN)
    paths = ["/", f"/runs/{runs['D']}", f"/runs/{runs['C']}/evaluation?model=fake%2Ftracked&dataset=data%2Fmanifest.jsonl",
             f"/compare?a={runs['A']}&b={runs['D']}", "/trends?metric=wer", f"/runs/{runs['evil']}"]
    for path in paths:
        visit(pg, viewer, path, f"w{width}-{path.strip('/').split('?')[0].replace('/', '-')[:40] or 'runs'}")
        overflow = pg.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        widest = pg.evaluate("""() => [...document.querySelectorAll('body *')].filter(e => !e.closest('.scroll') || e.matches('.scroll'))
            .map(e => [e.getBoundingClientRect().right, e.tagName + '.' + e.className + ' ' + e.textContent.slice(0, 40)])
            .sort((a, b) => b[0] - a[0]).slice(0, 3)""")
        assert overflow <= 0, (width, path, overflow, widest)
        if path.startswith("/runs/") and "evaluation" not in path and width >= 1024:
            narrowest = pg.evaluate("Math.min(...[...document.querySelectorAll('table.scorecard thead th')]"
                                    ".map(th => th.getBoundingClientRect().width))")
            assert narrowest >= 40, (width, path, narrowest)
    context.close()


def test_no_request_without_the_token(viewer, history):
    run = history["runs"]["A"]
    paths = ["/", f"/runs/{run}", f"/runs/{run}/evaluation?model=fake%2Ftracked&dataset=data%2Fmanifest.jsonl", "/compare",
             "/trends", f"/api/runs/{run}/progress", "/static/view.css", "/static/plotly.min.js",
             f"/audio?run={run}&model=fake%2Ftracked&dataset=data%2Fmanifest.jsonl&id=u0"]
    for path in paths:
        assert viewer.get(path, token=None)[0] == 401, path
        assert viewer.get(path, token="wrong-" + TOKEN)[0] == 401, path
        assert viewer.get(path, token=None, cookie=f"speechlab_view_{viewer.port}=nope")[0] == 401, path
        assert viewer.get(path)[0] == 200, path
        assert viewer.get(path, method="POST")[0] == 405, path  # nothing writes
    status, headers, _ = viewer.get("/")
    assert "script-src 'self'" in headers["Content-Security-Policy"] and headers["X-Content-Type-Options"] == "nosniff"


def test_a_generated_token_is_printed_and_works(history, browser):
    v = Viewer(history["db"], history["root"], token=None)
    try:
        token = v.printed_token.group(1)
        assert len(token) >= 32 and v.get("/", token=None)[0] == 401 and v.get("/", token=token)[0] == 200
        context = browser.new_context()
        pg = context.new_page()
        assert pg.goto(v.url).status == 401
        assert pg.goto(v.url + "?token=" + token).status == 200 and "token=" not in pg.url
        assert pg.goto(v.url + "trends").status == 200  # the cookie carries on
        context.close()
        with socket.create_connection(("127.0.0.1", v.port), timeout=30) as raw:  # a request line with ESC in it
            raw.sendall(b"GET /\x1b[2J HTTP/1.0\r\n\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.1 401")
    finally:
        v.stop()
    said = "".join(v.lines) + v.process.stdout.read()
    assert said.count(token) == 1  # printed once on start; the request log shows token=***
    assert "GET /?token=*** HTTP/1.1" in said and "\x1b" not in said


def test_binding_elsewhere_says_what_it_exposes(history):
    v = Viewer(history["db"], history["root"], host="0.0.0.0")
    try:
        said = "".join(v.lines)
        assert "WARNING: listening on 0.0.0.0" in said and "has the token" in said
        assert v.get("/", token=None)[0] == 401 and v.get("/")[0] == 200
    finally:
        v.stop()


def test_audio_is_served_only_as_the_file_a_row_names(viewer, history):
    runs = history["runs"]
    ok = viewer.get(f"/audio?run={runs['A']}&model=fake%2Ftracked&dataset=data%2Fmanifest.jsonl&id=u0")
    assert ok[0] == 200 and ok[1]["Content-Type"] == "audio/wav"
    assert ok[2] == (history["root"] / "data" / "u0.wav").read_bytes()
    traversal = ["/audio?run={r}&model=fake%2Ftracked&dataset=data%2Fmanifest.jsonl&id=..%2F..%2F..%2Fetc%2Fpasswd",
                 "/audio?run={r}&model=fake%2Ftracked&dataset=..%2F..&id=u0", "/audio?path=%2Fetc%2Fpasswd",
                 "/static/../../../../etc/passwd", "/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
                 "/static/%2e%2e/app.py", "/audio/../../etc/passwd"]
    for path in traversal:
        status, _, body = viewer.get(path.format(r=runs["A"]))
        assert status == 404 and b"root:" not in body and b"import" not in body, path
    # the imported run's rows name /etc/passwd, a non-audio .wav and a .py file: none is served
    for uid in ("u0", "u1", "u2", "u3"):
        status, _, body = viewer.get(f"/audio?run={q(runs['imported'])}&model=fake%2Ftracked&dataset=data%2Fmanifest.jsonl&id={uid}")
        assert status == 404 and b"root:" not in body and b"secret" not in body, uid


def test_hostile_values_render_as_text(page, viewer, history):
    run = history["runs"]["evil"]
    model, dataset = "evil/" + PAYLOAD, history["evil_folder"].name + "/m.jsonl"
    for path in ["/", f"/runs/{run}", f"/runs/{run}/evaluation?model={q(model)}&dataset={q(dataset)}",
                 f"/trends?model={q(model)}", f"/compare?a={run}&b={run}"]:
        page.goto(viewer.url.rstrip("/") + path)
        page.wait_for_load_state("networkidle")
        state = page.evaluate("""() => ({pwned: window.__pwned === 1, imgs: document.querySelectorAll('img[src="x"]').length,
            handlers: [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
            scripts: [...document.scripts].filter(s => s.textContent.includes('__pwned')).length})""")
        assert state == {"pwned": False, "imgs": 0, "handlers": 0, "scripts": 0}, (path, state)
        assert PAYLOAD in page.locator("main").inner_text(), path  # shown, as text


def test_every_page_works_with_the_keyboard_alone(page, viewer, history):
    runs = history["runs"]

    def tab_to(selector_js: str, limit: int = 150) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate(f"(() => {{ const e = document.activeElement; return !!e && ({selector_js}); }})()"):
                return
        raise AssertionError(f"Tab never reached {selector_js} on {page.url}")

    page.goto(viewer.url)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    tab_to(f"e.getAttribute('href') === '/runs/{runs['C']}'")  # the runs page -> a run
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/runs/{runs['C']}")
    tab_to("e.textContent.startsWith('Utterances')")  # the run -> an evaluation
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/evaluation\?.*"))
    tab_to("e.textContent === 'id' && e.tagName === 'A'")  # sort by id
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*sort=id.*"))
    ids = page.locator("table.utterances tbody th code").all_inner_texts()
    assert ids == sorted(ids)
    page.goto(viewer.url + "trends")  # trends: choose a figure with the keyboard
    tab_to("e.name === 'metric'")
    page.keyboard.press("ArrowDown")
    tab_to("e.tagName === 'BUTTON'")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*metric=cer.*"))
    page.goto(viewer.url + "compare")  # compare: two runs chosen with the keyboard
    tab_to("e.name === 'a'")
    page.keyboard.press("ArrowDown")
    tab_to("e.name === 'b'")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    tab_to("e.tagName === 'BUTTON'")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*compare\?a=.*"))
    assert page.locator("section.pair").count() >= 0 and "Baseline" in page.locator("main").inner_text()
    focus = page.evaluate("""() => { const a = document.querySelector('main a'); a.focus();
        return getComputedStyle(a).outlineStyle + ' ' + getComputedStyle(a).outlineWidth; }""")
    assert focus.startswith("solid") and not focus.endswith(" 0px")  # focus is visible


def test_a_run_in_progress_refreshes_by_itself(browser, viewer, history, tmp_path):
    clips = [(f"s{i}", 1.0 + 0.1 * i, "golf hotel") for i in range(20)]
    root = tmp_path / "slow"
    _project(root, clips, suites=("test_asr_accuracy.py",))
    (root / "texts.json").write_text(_texts(clips, {}))
    run = _pytest(root, history["db"], "--speechlab-model", "fake/slow", wait=False)
    try:
        context = browser.new_context(bypass_csp=True)
        pg = context.new_page()
        pg.goto(viewer.url + "?token=" + TOKEN)
        run_id = None
        for _ in range(120):  # the run appears, incomplete
            row = pg.locator("table.runs tbody tr", has_text="incomplete")
            if row.count():
                run_id = row.first.locator("a").first.get_attribute("href").rsplit("/", 1)[1]
                break
            time.sleep(0.5)
            pg.reload()
        assert run_id, "the slow run never showed up as in progress"
        pg.goto(viewer.url + f"runs/{run_id}")
        assert "In progress" in pg.locator("#live-summary").inner_text()
        assert not axe(pg)
        pg.evaluate("window.__same_page = true")
        done = lambda: int(pg.locator("#live-table tbody tr").first.locator("td").nth(2).inner_text())  # noqa: E731
        first = done()
        pg.wait_for_function(f"parseInt(document.querySelector('#live-table tbody tr td:nth-child(3)').textContent) > {first}",
                             timeout=30000)
        assert pg.evaluate("window.__same_page === true")  # updated in place, not reloaded
        if SHOTS:
            pg.screenshot(path=str(Path(SHOTS) / "live.png"), full_page=True)
        pg.wait_for_function("!window.__same_page", timeout=60000)  # finished: the page reloads itself
        pg.wait_for_load_state("networkidle")
        assert pg.locator("h1 .status").inner_text() == "complete"
        assert pg.locator("table.scorecard tbody tr").count() == 1
        context.close()
    finally:
        run.wait(timeout=120)
