"""A real `mlflow server` on a free localhost port, for the tracking tests."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, proc: subprocess.Popen, url: str) -> None:
        self.proc, self.url = proc, url

    def get(self, endpoint: str, **params: Any) -> Any:
        query = urllib.parse.urlencode(params, doseq=True)
        with urllib.request.urlopen(f"{self.url}/api/2.0/mlflow/{endpoint}?{query}", timeout=30) as r:
            return json.loads(r.read())

    def post(self, endpoint: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(f"{self.url}/api/2.0/mlflow/{endpoint}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())

    def tree(self) -> list[int]:
        """The server's process and all its descendants (its uvicorn worker, job runner and queue consumers start
        sessions of their own, so its process group does not hold them all)."""
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                pid, ppid = int(stat.parent.name), int(stat.read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(pid)
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def kill(self) -> None:
        """Gone at once, as in a crash: the server and every process it started."""
        for pid in self.tree():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()

    def stop(self) -> None:
        tree = self.tree() if self.proc.poll() is None else []
        for pid in tree:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
        for pid in tree[1:]:  # anything that outlived the polite request
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@contextmanager
def mlflow_server(store: str, cwd: Path, *options: str, timeout: float = 120) -> Iterator[Server]:
    """`mlflow server` over the tracking store `store` (e.g. sqlite:///...) with more command-line options, stopped
    on exit."""
    port = free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    log = open(cwd / f"mlflow-server-{port}.log", "w")
    proc = subprocess.Popen([str(mlflow), "server", "--backend-store-uri", store, "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1", *options], cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # its own process group: the server and its uvicorn worker
    server = Server(proc, f"http://127.0.0.1:{port}")
    try:
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{server.url}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"mlflow server did not start:\n{(cwd / log.name).read_text()[-3000:]}")
            time.sleep(0.5)
        yield server
    finally:
        server.stop()
        log.close()
