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
from pytest_speechlab.metrics.listening import ab_figures, acr_figures, beside_predictor, mos, mushra_figures, sign_test
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
    assert pair["clips"] == 3 and pair["close"] == 1.0 and pair["within"] == 1 and pair["pearson"] == pytest.approx(0.9449, abs=1e-3)


def test_mushra_screens_out_a_rater_who_misses_the_hidden_reference():
    """BS.1534-3: a rater rating the hidden reference below 90 on more than 15% of items is left
    out; the means are over the raters kept (by hand: ann's and cy's scores)."""
    def rate(rater, item, ref, anchor, s1):
        return {"rater": rater, "item": item, "score": {"REF": ref, "ANCHOR": anchor, "S1": s1}}
    ratings = [rate("ann", "x", 100, 20, 60), rate("ann", "y", 95, 30, 70),
               rate("bob", "x", 100, 25, 50), rate("bob", "y", 85, 20, 90),  # 1 of 2 below 90: 50% > 15%
               rate("cy", "x", 90, 10, 40), rate("cy", "y", 100, 15, 50)]
    found = mushra_figures(ratings, ["S1", "REF", "ANCHOR"])
    assert found["kept"] == ["ann", "cy"] and found["raters"] == ["ann", "bob", "cy"]
    assert [s["screened_out"] for s in found["screening"]] == [False, True, False]
    assert found["screening"][1]["reference_below_90"] == 1 and found["screening"][1]["items"] == 2
    assert found["systems"]["S1"]["mos"] == (60 + 70 + 40 + 50) / 4 and found["systems"]["S1"]["n"] == 4
    assert found["systems"]["REF"]["ci"][1] == 100.0  # clipped to the scale
    (pair,) = found["agreement"]  # ann and cy only
    assert pair["raters"] == ["ann", "cy"] and pair["clips"] == 6 and pair["within"] == 10


def test_listeners_beside_dnsmos_by_hand():
    import numpy as np

    test = {"kind": "acr", "spec": {"items": [
        {"item": "a", "dnsmos": {"S1": 3.1, "S2": 2.0}}, {"item": "b", "dnsmos": {"S1": 3.5, "S2": 2.6}},
        {"item": "c", "dnsmos": {"S1": 2.9}}]}}  # c's S2 clip has no DNSMOS: left out
    ratings = [{"rater": r, "item": i, "score": s} for r, i, s in [
        ("ann", "a", {"S1": 4, "S2": 2}), ("bob", "a", {"S1": 5, "S2": 1}), ("ann", "b", {"S1": 5, "S2": 3}),
        ("ann", "c", {"S1": 3, "S2": 4})]]
    found = beside_predictor(test, ratings)
    listeners, dnsmos = [4.5, 1.5, 5, 3, 3], [3.1, 2.0, 3.5, 2.6, 2.9]
    assert found["n"] == 5 and found["pearson"] == pytest.approx(np.corrcoef(listeners, dnsmos)[0, 1])
    z, half = np.arctanh(found["pearson"]), 1.959964 / np.sqrt(2)
    assert found["ci"] == pytest.approx([np.tanh(z - half), np.tanh(z + half)])
    assert found["systems"]["S1"] == {"clips": 3, "listeners": pytest.approx(12.5 / 3), "dnsmos": pytest.approx(9.5 / 3)}
    assert beside_predictor({**test, "kind": "ab"}, ratings) is None


def test_the_mushra_anchor_is_the_reference_low_passed(tmp_path):
    import numpy as np
    import soundfile

    from pytest_speechlab.sinks.listening import _anchor

    noise = np.random.default_rng(0).uniform(-0.5, 0.5, 48000).astype(np.float32)
    soundfile.write(tmp_path / "ref.wav", noise, 16000)
    anchor, rate = soundfile.read(_anchor(tmp_path / "ref.wav", tmp_path))
    assert rate == 16000 and abs(len(anchor) - len(noise)) <= 2

    def above(x, hz):  # the share of the energy above hz
        spectrum = np.abs(np.fft.rfft(x)) ** 2
        return spectrum[int(hz / 8000 * (len(spectrum) - 1)):].sum() / spectrum.sum()
    assert above(noise, 4000) > 0.45 and above(anchor, 4000) < 0.001  # white noise: half its energy is above 4 kHz
    assert _anchor(tmp_path / "ref.wav", tmp_path).name.startswith("anchor-")  # named after the reference copy, made once


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


def test_a_mushra_test_and_the_listeners_beside_dnsmos_in_every_report(tts_chat_project):  # noqa: F811
    """A MUSHRA test (hidden reference, 3.5 kHz anchor) rated by two raters, one screened out; an ACR
    test of both voices; the listeners beside DNSMOS of the same clips (recorded with the test) with
    their correlation, computed by hand, in `listen results`, the viewer, the terminal, the HTML report
    and the run page."""
    import numpy as np

    from pytest_speechlab.view.app import create_app

    project = tts_chat_project
    toml = project.path / "pyproject.toml"
    toml.write_text(toml.read_text().replace("quality = false", "quality = true"))
    models = ["--speechlab-model", "fake/tts", "--speechlab-model", "fake/tts-wrong"]
    assert "recorded as run" in project.runpytest_subprocess("suites/test_tts.py", *models).stdout.str()
    db, folder = f"sqlite:///{project.path / '.speechlab' / 'results.db'}", str(project.path / "listening")
    assert "needs --reference" in cli("listen", "create", "m", "latest:fake/tts-wrong", "--kind", "mushra", db=db).output
    made = cli("listen", "create", "closeness", "latest:fake/tts-wrong", "--kind", "mushra", "--reference",
               "latest:fake/tts", "--folder", folder, db=db)
    assert made.exit_code == 0 and "2 texts x 3 systems" in made.output, made.output
    assert cli("listen", "create", "both", "latest:fake/tts", "latest:fake/tts-wrong", "--folder", folder, db=db).exit_code == 0
    store = Store(db, read_only=True)
    mushra = store.listening_test("closeness")["spec"]
    assert [(s["label"], s.get("role")) for s in mushra["systems"]] == [("S1", None), ("REF", "reference"), ("ANCHOR", "anchor")]
    assert all(set(i["dnsmos"]) == {"S1", "REF"} and i["clips"]["ANCHOR"] != i["clips"]["REF"] for i in mushra["items"])

    app = create_app(lambda: Store(db, read_only=True), "tok", port_label="1", listening=lambda: Store(db))
    auth = {"Authorization": "Bearer tok"}
    plan = {"ann": ({"REF": 100, "ANCHOR": 20, "S1": 30}, {"S1": 5, "S2": 1}),
            "bob": ({"REF": 70, "ANCHOR": 10, "S1": 60}, {"S1": 4, "S2": 2})}  # bob misses the hidden reference
    for rater, (closeness, both) in plan.items():
        client = app.test_client()
        home = client.get("/listen", headers=auth)
        assert "MUSHRA (0-100)" in home.text
        client.post("/listen", data={"rater": rater, "csrf": field(home.text, "csrf")}, headers=auth)
        for test, scores, labels in (("closeness", closeness, ["S1", "REF", "ANCHOR"]), ("both", both, ["S1", "S2"])):
            for _ in range(2):
                page = client.get(f"/listen/{test}", headers=auth)
                assert page.status_code == 200 and "fake/tts" not in page.text
                item, token = field(page.text, "item"), field(page.text, "csrf")
                shown = order(rater, test, item, labels)
                form = {f"score{slot}": str(scores[label]) for slot, label in enumerate(shown)}
                if test == "closeness":
                    assert 'slot=ref' in page.text and client.get(f"/listen/{test}/clip?item={item}&slot=ref",
                                                                  headers=auth).data[:4] == b"RIFF"
                    bad = client.post(f"/listen/{test}", data={**form, "score0": "101", "item": item, "csrf": token}, headers=auth)
                    assert bad.status_code == 400 and "from 0 to 100" in bad.text
                assert client.post(f"/listen/{test}", data={**form, "item": item, "csrf": token}, headers=auth).status_code == 303
    results = cli("listen", "results", "closeness", db=db).output
    assert "rater bob: hidden reference below 90 on 2 of 2 items (more than 15%: screened out" in results
    assert "rater ann: hidden reference below 90 on 0 of 2 items\n" in results
    assert re.search(r"fake/tts-wrong \(run \w+\): mean score 30\.0 \[95% CI 30\.0-30\.0\] over 2 ratings", results)  # ann's only
    assert re.search(r"fake/tts \(run \w+\), hidden reference: mean score 100\.0 .*over 2", results)
    assert re.search(r"low-pass anchor: mean score 20\.0 .*over 2", results)
    # the ACR test: each clip's mean listener score beside the DNSMOS recorded with the test
    spec = store.listening_test("both")["spec"]
    listeners = {"S1": 4.5, "S2": 1.5}
    xs = [listeners[label] for i in spec["items"] for label in ("S1", "S2")]
    ys = [i["dnsmos"][label] for i in spec["items"] for label in ("S1", "S2")]
    r = np.corrcoef(xs, ys)[0, 1]
    both = cli("listen", "results", "both", db=db).output
    assert f"listeners and DNSMOS over 4 clips: Pearson r {r:.2f}" in both, both
    assert f"listeners 4.50, DNSMOS OVRL {(ys[0] + ys[2]) / 2:.2f} on the same 2 clips" in both
    page = app.test_client().get("/listen/both/results", headers=auth).text
    assert "Listeners and DNSMOS over 4 clips: Pearson r" in page and f"{r:.2f}" in page
    assert "screened out" in app.test_client().get("/listen/closeness/results", headers=auth).text
    # the next run of the suite: its clips are the rated ones (same audio), beside this run's DNSMOS
    again = project.runpytest_subprocess("suites/test_tts.py", *models, "--html", "report.html", "--self-contained-html")
    out = again.stdout.str()
    assert ("listeners (ACR, speechlab view --listening): MOS 4.50 [95% CI 3.58-5.00] over 4 ratings of 2 distinct "
            "clips; this run's clip of 2 text(s) among them: listeners 4.50, DNSMOS OVRL") in out, out
    report = (project.path / "report.html").read_text()
    assert "Text-to-speech: predicted quality and listeners" in report and "4.50 [3.58, 5.00] (n = 4)" in report
    assert report.count("2 (2 distinct clips rated)") == 2
    run_id = store.resolve("latest")
    run_page = app.test_client().get(f"/runs/{run_id}", headers=auth).text
    assert "Listeners' MOS" in run_page and "4.50 [" in run_page and "(4 ratings)" in run_page


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


@pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
def test_a_mushra_page_in_chromium(listening, browser):  # noqa: F811
    """The MUSHRA page with the mouse and keyboard: an open reference, a slider per sample (hidden
    reference and anchor among them), no axe-core violation; the scores stored as set."""
    from test_view import TOKEN, Viewer, axe

    project, db = listening
    made = cli("listen", "create", "close", "latest:fake/tts-wrong", "--kind", "mushra", "--reference", "latest:fake/tts",
               "--folder", str(project.path / "listening"), db=db)
    assert made.exit_code == 0, made.output
    viewer = Viewer(db.removeprefix("sqlite:///"), project.path, extra=("--listening",))
    try:
        # axe-core is injected, which needs the page's CSP bypassed: a look without rating
        page = browser.new_context(bypass_csp=True).new_page()
        page.goto(viewer.url + "?token=" + TOKEN)
        page.goto(viewer.url + "listen")
        page.fill("input[name=rater]", "looker")
        page.click("button[type=submit]")
        page.click("text=close")
        assert page.locator("audio[aria-label='the reference']").count() == 1 and not axe(page), axe(page)
        # the rater, under the viewer's CSP as served
        page = browser.new_context().new_page()
        page.goto(viewer.url + "?token=" + TOKEN)
        page.goto(viewer.url + "listen")
        page.fill("input[name=rater]", "cy")
        page.click("button[type=submit]")
        page.click("text=close")
        for _ in range(2):
            assert page.locator("input[type=range]").count() == 3
            for slot, value in enumerate(("100", "15", "40")):
                page.fill(f"#score{slot}", value)
            assert page.locator("output[for=score1]").inner_text() == "15"  # view.js, allowed by the CSP
            page.click("button[type=submit]")
        assert "/listen/close/results" in page.url and "hidden reference" in page.content()
    finally:
        viewer.stop()
    stored = [r for r in Store(db, read_only=True).ratings("close")]
    assert len(stored) == 2 and all(sorted(r["score"].values()) == [15, 40, 100] and len(r["shown"]) == 3 for r in stored)


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
