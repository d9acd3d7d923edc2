"""Listening tests: made from recorded TTS evaluations, rated by two raters through the viewer's
rating pages (CSRF-protected), stored in the results database, and turned into figures computed by
hand here: ACR MOS with its t interval, A/B preference with its exact sign test, rater agreement;
the TTS suite's human_mos judged from them. The browser test drives the same pages in Chromium."""
from __future__ import annotations

import math
import re

import pytest
from click.testing import CliRunner
from test_tts_chat import tts_chat_project  # noqa: F401 - the fixture: a project with fake TTS models
from test_view import MISSING, browser  # noqa: F401 - the fixture: headless Chromium

from pytest_speechlab.cli import main as speechlab
from pytest_speechlab.metrics.listening import ab_figures, acr_figures, mos, sign_test
from pytest_speechlab.sinks.store import Store
from pytest_speechlab.view.listening import order


def test_figures_by_hand():
    assert sign_test(1, 4) == pytest.approx(2 * (1 + 4) / 16) and sign_test(0, 0) == 1.0
    m = mos([4, 5, 3, 4])
    half = 3.182446 * math.sqrt(2 / 3) / 2  # t(0.975, 3) sd / sqrt(n)
    assert m["mos"] == 4.0 and m["ci"][0] == pytest.approx(4.0 - half, abs=1e-3) and m["ci"][1] == 5.0
    ratings = [{"rater": r, "item": i, "score": {"choice": c}} for r, i, c in
               [("ann", "x", "S1"), ("ann", "y", "S1"), ("bob", "x", "S1"), ("bob", "y", "S2")]]
    ab = ab_figures(ratings, ["S1", "S2"])
    assert ab["systems"] == {"S1": 3, "S2": 1} and ab["p"] == pytest.approx(0.625)
    assert ab["agreement"] == [{"raters": ["ann", "bob"], "items": 2, "agreed": 0.5}]
    acr = acr_figures([{"rater": "ann", "item": i, "score": {"S1": v}} for i, v in zip("abc", (2, 4, 5))]
                      + [{"rater": "bob", "item": i, "score": {"S1": v}} for i, v in zip("abc", (1, 4, 4))], ["S1"])
    (pair,) = acr["agreement"]
    assert pair["clips"] == 3 and pair["within_one"] == 1.0 and pair["pearson"] == pytest.approx(0.9449, abs=1e-3)


def cli(*args, db: str):
    result = CliRunner().invoke(speechlab, ["--db", db, *args])
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def listening(tts_chat_project):  # noqa: F811
    """Two recorded TTS evaluations, an A/B test between them and an ACR test of the first."""
    project = tts_chat_project
    result = project.runpytest("suites/test_tts.py", "--speechlab-model", "fake/tts", "--speechlab-model",
                               "fake/tts-wrong")
    db = f"sqlite:///{project.path / '.speechlab' / 'results.db'}"
    assert "recorded as run" in result.stdout.str()
    folder = str(project.path / "listening")
    made = cli("listen", "create", "voices", "latest:fake/tts", "latest:fake/tts-wrong", "--kind", "ab",
               "--folder", folder, db=db)
    assert made.exit_code == 0 and "2 texts x 2 systems" in made.output, made.output
    assert cli("listen", "create", "quality", "latest:fake/tts", "--folder", folder, db=db).exit_code == 0
    assert cli("listen", "create", "voices", "latest:fake/tts", db=db).exit_code == 2  # names are unique
    assert "none of /" in cli("listen", "create", "a/b", "latest:fake/tts", db=db).output
    assert "an A/B test compares two systems" in cli("listen", "create", "x", "latest:fake/tts", "--kind", "ab",
                                                      db=db).output
    return project, db


def field(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', html).group(1)


def test_two_raters_rate_an_ab_and_an_acr_test_through_the_viewer(listening):
    from pytest_speechlab.view.app import create_app

    project, db = listening
    app = create_app(lambda: Store(db, read_only=True), "tok", port_label="1", listening=lambda: Store(db))
    auth = {"Authorization": "Bearer tok"}
    plan = {"ann": {"voices": ["S1", "S1"], "quality": [4, 5]}, "bob": {"voices": ["S1", "S2"], "quality": [3, 4]}}
    for rater, answers in plan.items():
        client = app.test_client()
        home = client.get("/listen", headers=auth)
        assert home.status_code == 200 and "Listening tests" in home.text
        assert client.post("/listen", data={"rater": rater}, headers=auth).status_code == 403  # no CSRF token
        assert client.post("/listen", data={"rater": rater, "csrf": field(home.text, "csrf")}, headers=auth).status_code == 303
        for test in ("voices", "quality"):
            for answer in answers[test]:
                page = client.get(f"/listen/{test}", headers=auth)
                assert page.status_code == 200 and "fake/tts" not in page.text  # which system is hidden
                item, token = field(page.text, "item"), field(page.text, "csrf")
                shown = order(rater, test, item, ["S1", "S2"] if test == "voices" else ["S1"])
                form = ({"choice": str(shown.index(answer))} if test == "voices" else {"score0": str(answer)})
                forged = client.post(f"/listen/{test}", data={**form, "item": item, "csrf": "0" * 64}, headers=auth)
                assert forged.status_code == 403
                assert client.post(f"/listen/{test}", data={**form, "item": item, "csrf": token},
                                   headers=auth).status_code == 303
                clip = client.get(f"/listen/{test}/clip?item={item}&slot=0", headers=auth)
                assert clip.status_code == 200 and clip.data[:4] == b"RIFF"
            assert client.get(f"/listen/{test}", headers=auth).status_code == 303  # done: to the results
    ratings = Store(db, read_only=True).ratings()
    assert len(ratings) == 8 and {r["rater"] for r in ratings} == {"ann", "bob"}
    assert all(r["created_at"] and r["shown"] for r in ratings)
    results = cli("listen", "results", "voices", db=db).output
    assert "fake/tts (run" in results and "preferred 3 times" in results and "p = 0.6250" in results
    assert "raters ann and bob: agreed on 50% of 2 in common" in results
    quality = cli("listen", "results", "quality", db=db).output
    assert "MOS 4.00 [95% CI 2.70-5.00] over 4 ratings" in quality
    page = app.test_client().get("/listen/voices/results", headers=auth)  # no rater cookie: the owner's view
    assert page.status_code == 200 and "fake/tts-wrong" in page.text and "0.6250" in page.text
    # not in listening mode: no write at all
    plain = create_app(lambda: Store(db, read_only=True), "tok").test_client()
    assert plain.post("/listen", headers=auth).status_code == 405
    # the TTS suite judges human_mos from the stored ratings
    toml = project.path / "pyproject.toml"
    toml.write_text(toml.read_text().replace("[tool.speechlab.min_samples]\n", "[tool.speechlab.min_samples]\nhuman_mos = 4\n"))
    judged = project.runpytest("suites/test_tts.py", "-k", "listeners_opinion", "--speechlab-model", "fake/tts", "-rs")
    judged.assert_outcomes(passed=1)
    toml.write_text(toml.read_text().replace("human_mos = 4", "human_mos = 5"))
    unjudged = project.runpytest("suites/test_tts.py", "-k", "listeners_opinion", "--speechlab-model", "fake/tts", "-rs")
    unjudged.assert_outcomes(skipped=1)
    assert "4 ratings < 5" in unjudged.stdout.str()


@pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
def test_a_listening_session_in_chromium_two_raters_ab_and_acr(listening, browser):  # noqa: F811
    """Two raters in their own browser contexts rate the A/B and the ACR test with the mouse; the
    pages pass axe-core; the ratings are in the database and the results page gives the figures."""
    from test_view import TOKEN, Viewer, axe

    project, db = listening
    viewer = Viewer(db.removeprefix("sqlite:///"), project.path, extra=("--listening",))
    try:
        assert any("listening tests:" in line for line in viewer.lines)
        plan = {"ann": {"voices": ["A", "A"], "quality": ["4", "5"]}, "bob": {"voices": ["A", "B"], "quality": ["3", "4"]}}
        for rater, answers in plan.items():
            context = browser.new_context(bypass_csp=True, viewport={"width": 1024, "height": 900})
            page = context.new_page()
            page.goto(viewer.url + "?token=" + TOKEN)
            page.goto(viewer.url + "listen")
            assert not axe(page), axe(page)
            page.fill("input[name=rater]", rater)
            page.click("button[type=submit]")
            page.click("text=voices")
            for letter in answers["voices"]:
                assert not axe(page), axe(page)
                page.check(f"input[name=choice][value='{'AB'.index(letter)}']")
                page.click("button[type=submit]")
            assert "/listen/voices/results" in page.url and "fake/tts-wrong" in page.content()  # revealed at the end
            page.goto(viewer.url + "listen/quality")
            for value in answers["quality"]:
                page.check(f"input[name=score0][value='{value}']")
                page.click("button[type=submit]")
            assert not axe(page), axe(page)
            assert "4.00" in page.locator("table.listening-results").inner_text() or rater == "ann"
            context.close()
    finally:
        viewer.stop()
    ratings = Store(db, read_only=True).ratings()
    assert len(ratings) == 8 and sorted({r["rater"] for r in ratings}) == ["ann", "bob"]
    results = cli("listen", "results", "quality", db=db).output
    assert "MOS 4.00 [95% CI 2.70-5.00] over 4 ratings" in results
    assert "voices (ab): 4 ratings by 2 raters" in cli("listen", "results", "voices", db=db).output


def test_a_damaged_stored_test_is_a_clear_page_not_a_traceback(tmp_path):
    from pytest_speechlab.view.app import create_app

    db = f"sqlite:///{tmp_path / 'r.db'}"
    store = Store(db)
    store.create_listening_test("broken", "ab", {"systems": [{"label": "S1"}], "items": "not a list", "folder": "/"})
    app = create_app(lambda: Store(db, read_only=True), "tok", listening=lambda: Store(db))
    client = app.test_client()
    auth = {"Authorization": "Bearer tok"}
    home = client.get("/listen", headers=auth)
    assert home.status_code == 200 and "broken" not in home.text  # not listed
    client.post("/listen", data={"rater": "ann", "csrf": field(home.text, "csrf")}, headers=auth)
    page = client.get("/listen/broken", headers=auth)
    assert page.status_code == 404 and "is damaged" in page.text


def test_only_audio_files_a_row_names_are_copied_into_a_test(tmp_path):
    from helpers import write_audio

    from pytest_speechlab.sinks.listening import _audio

    write_audio(tmp_path / "clip.wav", 0.5)
    (tmp_path / "secret.wav").write_text("not audio: a secret")
    assert _audio({"audio_path": str(tmp_path / "clip.wav")})
    assert not _audio({"audio_path": str(tmp_path / "secret.wav")})  # named like audio, is not
    assert not _audio({"audio_path": "/etc/passwd"}) and not _audio({"audio_path": None})
