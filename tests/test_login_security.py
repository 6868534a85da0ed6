"""Login against a real `align label serve`: wrong passwords lock the account (an admin lifts it), a
client flooding the login form gets 429, unknown and known names get the same reply, and the
password hash runs off the event loop."""

import inspect
import subprocess
import sys

import httpx
import pytest

from labeling_app import LabelStore


def _login(url: str, user: str, password: str) -> httpx.Response:
    return httpx.post(f"{url}/login", data={"username": user, "password": password}, timeout=30)


@pytest.fixture
def server(label_server):
    server = label_server(k=1, config="k: 1\nlogin_failures: 3\nclient_login_failures: 8\n")
    store = LabelStore(server.store_url)
    store.accounts.add_labeler("ann", "right-password")
    store.accounts.add_labeler("boss", "boss-password", role="admin")
    return server.start()


def test_wrong_passwords_lock_the_account_until_an_admin_lifts_it(server):
    assert _login(server.url, "ann", "right-password").status_code == 200
    for _ in range(3):
        assert _login(server.url, "ann", "guess").status_code == 400
    locked = _login(server.url, "ann", "right-password")
    assert locked.status_code == 400                           # the same reply as a wrong password
    command = [sys.executable, "-m", "align.cli", "label", "unlock", "--store", server.store_url]
    listed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert "ann: locked for 15 more minutes (3 wrong passwords within 900 s)" in listed.stdout
    lifted = subprocess.run([sys.executable, "-m", "align.cli", "label", "unlock", "ann", "--store",
                             server.store_url], capture_output=True, text=True, timeout=120)
    assert lifted.returncode == 0 and "unlocked 'ann'" in lifted.stdout
    assert _login(server.url, "ann", "right-password").status_code == 200


def test_a_client_flooding_the_login_gets_429_and_names_do_not_leak(server):
    unknown = _login(server.url, "nobody-here", "guess")
    known = _login(server.url, "boss", "guess")
    assert (unknown.status_code, unknown.text) == (known.status_code, known.text)
    for i in range(6):
        _login(server.url, f"user-{i}", "guess")
    refused = _login(server.url, "boss", "boss-password")          # 8 failures: this address is limited
    assert refused.status_code == 429 and "Too many failed logins" in refused.text


def test_uploads_are_refused(server):
    session = httpx.Client(base_url=server.url, timeout=30)
    assert session.post("/login", data={"username": "ann", "password": "right-password"}).status_code == 200
    upload = session.post("/gradio_api/upload", files={"files": ("x.txt", b"some bytes " * 100)})
    assert upload.status_code >= 400


def test_the_password_check_runs_off_the_event_loop(tmp_path):
    import asyncio
    import threading

    from labeling_app.app import launch_options

    store = LabelStore(f"sqlite:///{tmp_path}/l.db")
    store.accounts.add_labeler("ann", "right-password")
    auth = launch_options(store)["auth"]
    assert inspect.iscoroutinefunction(auth)                   # Gradio awaits it instead of blocking
    threads = []
    original = store.accounts.authenticate
    store.accounts.authenticate = lambda *a: threads.append(threading.current_thread().name) or original(*a)
    loop_thread = []

    async def main():
        loop_thread.append(threading.current_thread().name)
        return await auth("ann", "right-password"), await auth("ann", "wrong")

    assert asyncio.run(main()) == (True, False)
    assert threads and loop_thread[0] not in threads            # the scrypt check ran in a worker thread


def test_the_export_is_for_admins_only(server):
    from gradio_client import Client

    from tests.test_label_store import record

    LabelStore(server.store_url).add_records([record(i) for i in range(3)])
    admin = Client(server.url, auth=("boss", "boss-password"), verbose=False)
    exported = admin.predict(api_name="/on_export")                 # the zip, downloaded by the client
    assert str(exported).endswith(".zip")
    import os
    import tempfile
    from pathlib import Path

    temp = Path(tempfile.gettempdir())
    files = list(temp.glob("align-export-*/align-export-labels-*.zip"))
    assert files and all(p.stat().st_mode & 0o077 == 0 for p in files)          # private to the server
    # The file's URL as Gradio serves it: an admin gets it, a labeler gets 403.
    gradio_cache = Path(os.environ.get("GRADIO_TEMP_DIR") or temp / "gradio")
    cached = next(gradio_cache.rglob("align-export-labels-*.zip"))
    url = f"/gradio_api/file={cached}"
    boss = httpx.Client(base_url=server.url, timeout=30)
    boss.post("/login", data={"username": "boss", "password": "boss-password"})
    assert boss.get(url).status_code == 200
    ann = httpx.Client(base_url=server.url, timeout=30)
    ann.post("/login", data={"username": "ann", "password": "right-password"})
    assert ann.get(url).status_code == 403 and "admins only" in ann.get(url).text
    assert httpx.get(server.url + url, timeout=30).status_code in (401, 403)        # signed out


def test_refusals_are_4xx_with_a_clear_message_and_a_retry_is_answered(server):
    from tests.test_label_store import record

    LabelStore(server.store_url).add_records([record(i) for i in range(3)])
    http = httpx.Client(base_url=server.url, timeout=30)
    http.post("/login", data={"username": "ann", "password": "right-password"})

    def call(name, *data):
        return http.post(f"/gradio_api/run/{name}", json={"data": list(data), "session_hash": "s1"})

    pair = call("next_pair").json()["data"][0]
    refused = {
        "not assigned": call("submit_label", "0000000000000000", "A", 3, "", None),
        "int rationale": call("submit_label", pair["pair_id"], "A", 3, 7, None),
        "list rationale": call("submit_label", pair["pair_id"], "A", 3, ["x"], None),
        "bool strength": call("submit_label", pair["pair_id"], "A", True, "", None),
        "float strength": call("submit_label", pair["pair_id"], "A", 3.9, "", None),
        "admin only": call("on_refresh"),
    }
    assert {k: r.status_code for k, r in refused.items()} == {
        "not assigned": 409, "int rationale": 400, "list rationale": 400, "bool strength": 400,
        "float strength": 400, "admin only": 403}
    assert "rationale must be text" in refused["int rationale"].json()["error"]
    assert "Error binding" not in refused["list rationale"].text
    assert "len()" not in refused["int rationale"].text
    first = call("submit_label", pair["pair_id"], "A", 3, "", "request-1").json()["data"][0]
    retry = call("submit_label", pair["pair_id"], "A", 3, "", "request-1")
    assert retry.status_code == 200 and retry.json()["data"][0]["label_id"] == first["label_id"]
    assert len(LabelStore(server.store_url).labels()) == 1
