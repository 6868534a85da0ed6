"""A real Label Studio server for the slow round-trip test: installed once into a virtual environment of
its own (its pins clash with ours), started on a free port with its SQLite backend and a fixed API
token, driven through its REST API, stopped afterwards."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

VERSION = "1.23.2"
TOKEN = "align0roundtrip0token0000000000000000000"
VENV = Path(os.environ.get("ALIGN_LABEL_STUDIO_VENV",
                           Path.home() / ".cache" / "align-toolkit" / f"label-studio-{VERSION}"))


def label_studio_bin() -> Path:
    """The `label-studio` command, installed into `VENV` first if needed (a few minutes, once)."""
    exe = VENV / "bin" / "label-studio"
    if not exe.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        # sentry-sdk 3 dropped an option Label Studio 1.23 passes it: its start fails on import
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", f"label-studio=={VERSION}",
                        "sentry-sdk<3"], check=True)
    return exe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabelStudio:
    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def __enter__(self) -> "LabelStudio":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir), "DJANGO_DB": "sqlite",
               "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true", "HF_HUB_OFFLINE": "1",
               "LABEL_STUDIO_DISABLE_VERSION_CHECK": "true"}
        self.log = open(self.data_dir / "server.log", "w")
        self.process = subprocess.Popen(
            [str(label_studio_bin()), "start", "--no-browser", "--internal-host", "127.0.0.1",
             "--port", str(self.port), "--data-dir", str(self.data_dir), "--username", "admin@example.com",
             "--password", "align-roundtrip", "--user-token", TOKEN],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 300                      # the first start runs its migrations
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"label-studio exited: {self._log_tail()}")
            try:
                self.call("GET", "/api/projects")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(2)
        raise TimeoutError(f"label-studio did not answer: {self._log_tail()}")

    def _log_tail(self) -> str:
        return (self.data_dir / "server.log").read_text()[-3000:]

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()

    def call(self, method: str, path: str, body=None, raw: bool = False):
        request = urllib.request.Request(
            self.url + path, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as reply:
            data = reply.read()
        return data if raw else json.loads(data or b"null")

    def create_project(self, title: str, label_config: str) -> int:
        return self.call("POST", "/api/projects", {"title": title, "label_config": label_config})["id"]

    def import_tasks(self, project: int, tasks: list[dict]) -> None:
        self.call("POST", f"/api/projects/{project}/import", tasks)

    def tasks(self, project: int) -> list[dict]:
        reply = self.call("GET", f"/api/tasks?project={project}&page_size=1000")
        return reply["tasks"] if isinstance(reply, dict) else reply

    def annotate(self, task: int, result: list[dict], lead_time: float) -> None:
        self.call("POST", f"/api/tasks/{task}/annotations/", {"result": result, "lead_time": lead_time})

    def export(self, project: int) -> bytes:
        return self.call("GET", f"/api/projects/{project}/export?exportType=JSON", raw=True)
