"""The labeling UI in a real browser (Debian's chromium driven by Playwright): log in, label with the
mouse and with the keyboard, undo; hostile HTML shows as text and runs nothing; a labeler has no
admin view."""

import shutil

import pytest

from labeling_app import LabelStore
from tests.test_label_store import record

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make test installs it)")

HOSTILE = '<script>window.__xss = 1</script> and <img src=x onerror="window.__xss = 2"> end'


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


def login(browser, url, user, password):
    page = browser.new_page()
    page.set_default_timeout(20_000)
    page.goto(url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector("#status", state="visible")
    return page


def saved_count(page) -> int:
    import re

    match = re.search(r"Labeled today: (\d+)", page.locator("#status").inner_text())
    return int(match.group(1)) if match else -1


def wait_saved(page, n):
    page.wait_for_function(f"() => /Labeled today: {n}\\b/.test(document.querySelector('#status').innerText)")


def test_label_with_mouse_and_keyboard_undo_and_no_script(label_server, browser):
    server = label_server(k=1)
    store = LabelStore(server.store_url, k=1, seed=0)
    store.accounts.add_labeler("ann", "pw-ann")
    store.accounts.add_labeler("boss", "pw-boss", role="admin")
    hostile = record(0, chosen=HOSTILE)
    store.add_records([hostile, *[record(i) for i in range(1, 8)]])
    server.start()

    page = login(browser, server.url, "ann", "pw-ann")
    # The first pair holds the hostile response: shown as text, never run.
    panes = page.locator("#response-left").inner_text() + page.locator("#response-right").inner_text()
    assert "<script>window.__xss = 1</script>" in panes and "onerror=" in panes
    assert page.evaluate("() => window.__xss") is None
    page.screenshot(path=str(server.folder / "labeling.png"), full_page=True)
    assert page.locator("#admin").is_hidden()                     # a labeler has no admin view
    assert "Nothing left" not in page.locator("#status").inner_text()

    for i, (choice, strength) in enumerate([("A is better (1)", "better (e)"),
                                            ("B is better (2)", "slightly better (w)"),
                                            ("Tie (3)", None)]):
        page.locator("#choice").get_by_text(choice, exact=True).click()
        if strength:
            page.locator("#strength").get_by_text(strength, exact=True).click()
        page.locator("#submit-btn").click()
        wait_saved(page, i + 1)
    for i, keys in enumerate([("2", "r"), ("1", "q"), ("4",)]):
        page.locator("#status").click()                              # focus outside any text box
        for key in keys:
            page.keyboard.press(key)
        page.keyboard.press("Enter")
        wait_saved(page, i + 4)
    page.locator("#status").click()
    page.keyboard.press("u")                                         # undo the "both bad"
    wait_saved(page, 5)
    assert page.evaluate("() => window.__xss") is None

    labels = store.labels()
    assert [(lab.shown_choice, lab.strength) for lab in labels] == [
        ("A", 3), ("B", 2), ("tie", 1), ("B", 4), ("A", 1)]
    assert len(store.labels(include_retracted=True)) == 6 and len(store.retracted_ids()) == 1
    assert all(lab.labeler == "ann" for lab in labels)

    store.accounts.lock("ann", 900, "5 wrong passwords within 900 s")
    admin = login(browser, server.url, "boss", "pw-boss")
    admin.wait_for_selector("#admin", state="visible")
    summary = admin.locator("#admin-summary").inner_text()
    assert "**" not in summary and "5 labels (1 retracted) on 8 pairs" in summary
    assert admin.locator("#labeling").is_hidden()                  # the admin page: no labeling panel
    assert not any(a.labeler == "boss" for a in _claims(store))  # and no claim on any pair
    assert "ann" in admin.locator("#admin-lockouts").inner_text()    # lockouts, and lifting one
    assert admin.locator("#admin-over-time").is_visible()            # labels over time, per labeler
    admin.locator("#admin-unlock-name input, #admin-unlock-name textarea").first.fill("ann")
    admin.locator("#admin-unlock").click()
    admin.wait_for_selector("text=Unlocked ann")
    assert not store.accounts.is_locked("ann")
    admin.locator("#admin-export").click()                           # the export: a zip to download
    admin.wait_for_selector("#admin-export-file a[href*='.zip'], #admin-export-file >> text=.zip")
    admin.screenshot(path=str(server.folder / "admin.png"), full_page=True)


def _claims(store):
    from types import SimpleNamespace

    rows = store.read("SELECT labeler, status FROM claims")
    return [SimpleNamespace(labeler=r[0], status=r[1]) for r in rows]


def test_strength_is_off_for_tie_and_both_bad(label_server, browser):
    server = label_server(k=1)
    store = LabelStore(server.store_url, k=1, seed=0)
    store.accounts.add_labeler("ann", "pw-ann")
    store.add_records([record(i) for i in range(3)])
    server.start()
    page = login(browser, server.url, "ann", "pw-ann")
    strength = page.locator("#strength input[type=radio]").first
    page.locator("#choice").get_by_text("Tie (3)", exact=True).click()
    page.wait_for_function("() => document.querySelector('#strength input[type=radio]').disabled")
    page.locator("#choice").get_by_text("A is better (1)", exact=True).click()
    page.wait_for_function("() => !document.querySelector('#strength input[type=radio]').disabled")
    assert strength.is_enabled()
    # `s` skips, and the skipped pair comes back once the others are labeled
    first = page.locator("#response-left").inner_text()
    page.locator("#status").click()
    page.keyboard.press("s")
    page.wait_for_function(f"() => document.querySelector('#response-left').innerText !== {first!r}")
    for n in (1, 2):
        page.locator("#status").click()
        for key in ("3", "Enter"):
            page.keyboard.press(key)
        wait_saved(page, n)
    page.wait_for_function(f"() => document.querySelector('#response-left').innerText === {first!r}")


def test_pair_text_loads_nothing_from_the_network(label_server, browser):
    """A markdown image (inline or by reference) or an HTML image in a pair, pointing at a local server
    that counts its hits: the labeler's browser never requests it, and the page carries a CSP."""
    import http.server
    import threading

    hits = []

    class Counter(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()

        def log_message(self, *args):
            pass

    tracker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counter)
    threading.Thread(target=tracker.serve_forever, daemon=True).start()
    host = f"http://127.0.0.1:{tracker.server_address[1]}"
    text = (f"Look: ![pixel]({host}/inline.png) and ![ref pixel][p] and <img src='{host}/html.png'>\n\n"
            f"[p]: {host}/reference.png")
    server = label_server(k=1)
    store = LabelStore(server.store_url, k=1, seed=0)
    store.accounts.add_labeler("ann", "pw-ann")
    store.add_records([record(0, chosen=text)])
    store.add_pairs([{"prompt": [{"role": "user", "content": text}],
                      "response_a": [{"role": "assistant", "content": "a"}],
                      "response_b": [{"role": "assistant", "content": "b"}]}])
    server.start()
    page = login(browser, server.url, "ann", "pw-ann")
    page.wait_for_timeout(1500)
    panes = page.locator("#response-left").inner_text() + page.locator("#response-right").inner_text()
    assert "[image: pixel]" in panes                                  # the alt text, not the image
    assert page.locator("img[src*='127.0.0.1']").count() == 0
    response = page.request.get(server.url + "/")
    assert "default-src 'self'" in response.headers.get("content-security-policy", "")
    tracker.shutdown()
    assert hits == []


def test_a_long_conversation_shows_from_its_start_with_no_clear_button(label_server, browser):
    server = label_server(k=1)
    store = LabelStore(server.store_url, k=1, seed=0)
    store.accounts.add_labeler("ann", "pw-ann")
    turns = [{"role": "system", "content": "You are a careful shop assistant."},
             {"role": "user", "content": "OPENING QUESTION: which kettle should I buy?"}]
    for i in range(15):
        turns += [{"role": "assistant", "content": f"answer {i} " + "words " * 30},
                  {"role": "user", "content": f"follow-up {i}"}]
    store.add_pairs([{"prompt": turns, "response_a": [{"role": "assistant", "content": "a"}],
                      "response_b": [{"role": "assistant", "content": "b"}]}])
    server.start()
    page = login(browser, server.url, "ann", "pw-ann")
    page.wait_for_selector("#conversation >> text=OPENING QUESTION")
    page.wait_for_timeout(800)
    page.screenshot(path=str(server.folder / "conversation.png"), full_page=True)
    pane = page.locator("#conversation")
    opening = pane.get_by_text("OPENING QUESTION", exact=False).first
    box, frame = opening.bounding_box(), pane.bounding_box()
    assert box is not None and frame["y"] <= box["y"] <= frame["y"] + frame["height"]   # in view, unscrolled
    assert "System prompt:" in pane.inner_text()
    assert "Use via API" not in page.content()                       # no API footer for labelers
    assert pane.locator("button[aria-label='Clear']").count() == 0 or \
        not pane.locator("button[aria-label='Clear']").first.is_visible()


def open_tab(page, name: str, content: str, tries: int = 3) -> None:
    """Click a tab until its content shows: a tab made visible by the page's load event may re-render
    under the first click (Gradio renders a tab's content when it is first selected)."""
    for attempt in range(tries):
        page.get_by_role("tab", name=name).first.click()
        try:
            page.wait_for_function(f"() => document.querySelector('{content}')?.innerText.trim().length > 0",
                                   timeout=5_000)
            return
        except Exception:
            if attempt == tries - 1:
                raise


def test_rate_with_keys_and_rank_by_typing(label_server, browser):
    from tests.test_label_tasks import sets

    server = label_server(k=1)
    store = LabelStore(server.store_url, k=1, seed=0)
    store.accounts.add_labeler("ann", "pw-ann")
    server.start()
    store.tasks.add_ratings(sets(1, 2))                               # imported while the app runs
    store.tasks.add_rankings(sets(1, 3))

    page = login(browser, server.url, "ann", "pw-ann")
    open_tab(page, "Rate", "#rate-response")
    for i, key in enumerate(("g", "b")):
        page.get_by_role("tab", name="Rate").first.focus()            # focus outside any text box
        page.keyboard.press(key)
        page.keyboard.press("Enter")
        page.wait_for_function(f"() => /Ratings done: {i + 1}\\b/.test("
                               f"document.querySelector('#rate-status').innerText)")
    assert [a.answer for a in store.tasks.answers("rating")] == ["good", "bad"]
    page.get_by_role("tab", name="Rate").first.focus()
    page.keyboard.press("u")                                          # undo the "bad": its task is back
    page.wait_for_function("() => /Undone.*Ratings done: 1\\b/.test("
                           "document.querySelector('#rate-status').innerText)")
    assert [a.answer for a in store.tasks.answers("rating")] == ["good"]
    page.keyboard.press("g")
    page.keyboard.press("Enter")
    page.wait_for_function("() => /Ratings done: 2\\b/.test("
                           "document.querySelector('#rate-status').innerText)")
    assert [a.answer for a in store.tasks.answers("rating")] == ["good", "good"]

    open_tab(page, "Rank", "#rank-response-2")
    assert page.locator("#rank-response-3").is_hidden()               # three responses, three slots
    shown = [page.locator(f"#rank-response-{i}").inner_text() for i in range(3)]
    box = page.locator("#rank-text input, #rank-text textarea").first
    box.fill("2 1 2")                                                  # B best; A and C tied after it
    box.press("Enter")
    page.wait_for_function("() => /Rankings done: 1\\b/.test("
                           "document.querySelector('#rank-status').innerText)")
    (answer,) = store.tasks.answers("ranking")
    (task_id, _, stored), = store.tasks.tasks("ranking")
    by_text = {r[0]["content"]: rank for r, rank in zip(stored, answer.answer)}
    assert [by_text[t.strip()] for t in shown] == [2, 1, 2]
