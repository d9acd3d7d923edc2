"""``speechlab view --listening``: rating pages for listening tests (``speechlab listen create``).

The viewer's token is still needed on every request; besides it:

- a rater enters a name once (kept in an HttpOnly, SameSite=Strict cookie for this port);
- every form carries a CSRF token, an HMAC of the rater, the test and the item under a key made at
  start: a form posted without it, with another rater's or another item's, is refused (403) and
  nothing is stored;
- the clips of an item are shown in an order drawn from the rater, the test and the item (recorded
  with the rating) and named only "Sample 1", "A"...: which system made which clip is hidden until
  the rater has rated every item (in a MUSHRA test the hidden reference and the anchor are among
  them; the open reference is played as "Reference");
- the only writes are ratings, through the one store opened writable for them; a clip is served
  only as a file the test names inside its own folder.
"""
from __future__ import annotations

import hashlib
import hmac
import random
import secrets
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from .._types import SpeechlabError
from ..metrics.listening import ACR_LABELS, REFERENCE, figures
from ..sinks.listening import well_formed
from . import data

MAX_RATER = 60


def order(rater: str, test: str, item: str, labels: list[str]) -> list[str]:
    """The order an item's clips are shown to a rater: random, repeatable, recorded with the rating."""
    seed = int.from_bytes(hashlib.sha256(f"{rater}\0{test}\0{item}".encode()).digest()[:8], "big")
    shown = list(labels)
    random.Random(seed).shuffle(shown)
    return shown


def register(app, flask, store: Callable[[], Any], port_label: str) -> None:
    """The listening routes on ``app``; ``store()`` returns the store ratings are written to."""
    key = secrets.token_bytes(32)
    cookie = f"speechlab_rater_{port_label or 'x'}"

    def csrf(rater: str, test: str, item: str) -> str:
        return hmac.new(key, f"{rater}\0{test}\0{item}".encode("utf-8", "surrogatepass"), "sha256").hexdigest()

    def checked(rater: str, test: str, item: str) -> None:
        given = flask.request.form.get("csrf", "")
        if not hmac.compare_digest(given.encode("utf-8", "replace"), csrf(rater, test, item).encode()):
            flask.abort(403, "this form's CSRF token is missing or not this rater's and item's: reload the page")

    def rater() -> str | None:
        name = flask.request.cookies.get(cookie, "")
        return name if 0 < len(name) <= MAX_RATER and name.isprintable() else None

    def test_of(name: str) -> dict:
        test = store().listening_test(name[:100])
        if not well_formed(test):
            raise SpeechlabError(f"listening test {name[:100]!r} is damaged (its stored spec is not what "
                                 "`speechlab listen create` writes)")
        return test

    def left(test: dict, who: str) -> list[dict]:
        done = {r["item"] for r in store().ratings(test["name"]) if r["rater"] == who}
        items = [i for i in test["spec"]["items"] if i["item"] not in done]
        random.Random(who + test["name"]).shuffle(items)  # each rater in an order of their own
        return items

    @app.route("/listen", methods=["GET", "POST"])
    def listen_home():
        if flask.request.method == "POST":
            checked("", "rater", "")
            name = flask.request.form.get("rater", "").strip()
            if not 0 < len(name) <= MAX_RATER or not name.isprintable():
                flask.abort(400, f"a rater's name: 1-{MAX_RATER} printable characters")
            response = flask.redirect("/listen", 303)
            response.set_cookie(cookie, name, httponly=True, samesite="Strict", path="/")
            return response
        who = rater()
        tests = [{**t, "left": len(left(t, who)) if who else None, "items": len(t["spec"]["items"])}
                 for t in store().listening_tests() if well_formed(t)]
        return flask.render_template("listen.html", title="Listening tests", tests=tests, rater=who,
                                     csrf=csrf("", "rater", ""))

    @app.route("/listen/<name>", methods=["GET", "POST"])
    def listen_test(name: str):
        test, who = test_of(name), rater()
        if who is None:
            return flask.redirect("/listen", 303)
        labels = [s["label"] for s in test["spec"]["systems"]]
        if flask.request.method == "POST":
            item = flask.request.form.get("item", "")[:4000]
            checked(who, test["name"], item)
            if item not in {i["item"] for i in left(test, who)}:
                flask.abort(409, "this item is rated already (or is not part of the test)")
            shown = order(who, test["name"], item, labels)
            if test["kind"] == "ab":
                choice = flask.request.form.get("choice", "")
                if choice not in ("0", "1"):
                    flask.abort(400, "choose A or B")
                score = {"choice": shown[int(choice)]}
            else:
                allowed = {str(k) for k in (ACR_LABELS if test["kind"] == "acr" else range(101))}
                score = {}
                for slot, label in enumerate(shown):
                    value = flask.request.form.get(f"score{slot}", "")
                    if value not in allowed:
                        flask.abort(400, f"rate sample {slot + 1} from {min(allowed, key=int)} to {max(allowed, key=int)}")
                    score[label] = int(value)
            store().add_rating(test["name"], who, item, shown, score)
            return flask.redirect(f"/listen/{quote(test['name'], safe='')}", 303)
        remaining = left(test, who)
        if not remaining:
            return flask.redirect(f"/listen/{quote(test['name'], safe='')}/results", 303)
        item = remaining[0]
        return flask.render_template("listen_item.html", title=f"Listening test {test['name']}", test=test,
                                     item=item, slots=len(labels), rater=who, left=len(remaining),
                                     total=len(test["spec"]["items"]), acr=ACR_LABELS,
                                     csrf=csrf(who, test["name"], item["item"]))

    @app.get("/listen/<name>/clip")
    def listen_clip(name: str):
        test, who = test_of(name), rater()
        if who is None:
            flask.abort(403, "enter your name on /listen first")
        item = next((i for i in test["spec"]["items"] if i["item"] == flask.request.args.get("item", "")), None)
        slot = flask.request.args.get("slot", "")
        labels = [s["label"] for s in test["spec"]["systems"]]
        if slot == "ref" and test["kind"] == "mushra" and item is not None:  # the open reference
            label = REFERENCE
        elif item is None or not slot.isdigit() or int(slot) >= len(labels):
            flask.abort(404)
        else:
            label = order(who, test["name"], item["item"], labels)[int(slot)]
        path = Path(item["clips"][label])
        folder = Path(test["spec"]["folder"])
        if folder not in path.resolve().parents or data.playable(str(path)) is None:
            flask.abort(404)
        return flask.send_file(path, mimetype="audio/wav", conditional=True, download_name="clip.wav")

    @app.get("/listen/<name>/results")
    def listen_results(name: str):
        test, who = test_of(name), rater()
        ratings = store().ratings(test["name"])
        if who is not None and left(test, who):
            flask.abort(403, "the results (and which system made which clip) are shown once you have rated every item")
        systems = {s["label"]: s for s in test["spec"]["systems"]}
        return flask.render_template("listen_results.html", title=f"Results of {test['name']}", test=test,
                                     found=figures(test, ratings), systems=systems)
