"""Render report.html in headless Chromium and check sections, images and console output.

The browser is driven over the Chrome DevTools Protocol on 127.0.0.1 with a minimal WebSocket
client built on the standard library, so the test needs no package beyond Chromium itself.
Set MEDXAI_REPORT_SCREENSHOTS to a folder to keep the full-page screenshots for a visual check.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from tests.report.report_fixtures import IG_FAILURE, QUANTUS_FAILURE

from medxai.report import build_report

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium not found on PATH; install it with 'apt-get install -y chromium' "
    "to run the browser check",
)

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]
STARTUP_TIMEOUT_S = 60.0
CALL_TIMEOUT_S = 60.0
PHONE = (390, 844)
DESKTOP = (1280, 900)
SECTION_IDS = [
    "dataset",
    "environment",
    "curves",
    "test-metrics",
    "explanations",
    "quantus",
    "failures",
    "config",
]

PAGE_STATE_JS = """
(async () => {
  // Open collapsed blocks so that every image is laid out and measured.
  document.querySelectorAll("details").forEach((block) => { block.open = true; });
  const decoded = await Promise.all(Array.from(document.images).map(
    (img) => img.decode().then(() => true, () => false)));
  return JSON.stringify({
    images: Array.from(document.images).map((img, i) => ({
      alt: img.alt, decoded: decoded[i], naturalWidth: img.naturalWidth,
      shownWidth: img.getBoundingClientRect().width})),
    sections: Array.from(document.querySelectorAll("main > section")).map((s) => ({
      id: s.id, heading: s.querySelector("h2").textContent, textLength: s.innerText.length})),
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    scripts: document.scripts.length,
    wrongRows: document.querySelectorAll("table.grid tr.wrong").length,
    text: document.body.innerText,
  });
})()
"""


class DevToolsConnection:
    """A WebSocket connection to one Chromium page target (RFC 6455 client frames, text only)."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self._socket = socket.create_connection((parsed.hostname, parsed.port), timeout=CALL_TIMEOUT_S)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

        key = base64.b64encode(os.urandom(16)).decode()
        handshake = (
            f"GET {parsed.path} HTTP/1.1\r\nHost: {parsed.hostname}:{parsed.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self._socket.sendall(handshake.encode())
        while b"\r\n\r\n" not in self._buffer:
            self._buffer += self._receive_chunk()
        status_line, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        if b" 101 " not in status_line.split(b"\r\n")[0]:
            raise ConnectionError(f"WebSocket handshake rejected: {status_line!r}")

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one DevTools command and return its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        command_id = self._next_id
        self._send_text(json.dumps({"id": command_id, "method": method, "params": params or {}}))
        while True:
            message = json.loads(self._receive_message())
            if message.get("id") == command_id:
                if "error" in message:
                    raise RuntimeError(f"{method} failed: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_for_event(self, name: str, timeout_s: float = CALL_TIMEOUT_S) -> dict[str, Any]:
        """Return the first recorded or incoming event called ``name``."""
        deadline = time.monotonic() + timeout_s
        while True:
            for event in self.events:
                if event["method"] == name:
                    return event
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {name} event within {timeout_s} s")
            message = json.loads(self._receive_message())
            if "method" in message:
                self.events.append(message)

    def close(self) -> None:
        self._socket.close()

    def _receive_chunk(self) -> bytes:
        chunk = self._socket.recv(1 << 20)
        if not chunk:
            raise ConnectionError("DevTools connection closed")
        return chunk

    def _receive_exact(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._buffer += self._receive_chunk()
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _receive_message(self) -> str:
        fragments = []
        while True:
            first, second = self._receive_exact(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack(">H", self._receive_exact(2))
            elif length == 127:
                (length,) = struct.unpack(">Q", self._receive_exact(8))
            mask = self._receive_exact(4) if second & 0x80 else None
            payload = self._receive_exact(length)
            if mask:
                payload = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
            opcode = first & 0x0F
            if opcode == 0x8:
                raise ConnectionError("DevTools connection closed by the browser")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode in (0x0, 0x1, 0x2):
                fragments.append(payload)
                if first & 0x80:
                    return b"".join(fragments).decode("utf-8")

    def _send_text(self, text: str) -> None:
        self._send_frame(0x1, text.encode("utf-8"))

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        # Client frames must be masked (RFC 6455, section 5.3).
        header = bytearray([0x80 | opcode])
        if len(payload) < 126:
            header.append(0x80 | len(payload))
        elif len(payload) < 1 << 16:
            header.append(0x80 | 126)
            header += struct.pack(">H", len(payload))
        else:
            header.append(0x80 | 127)
            header += struct.pack(">Q", len(payload))
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        self._socket.sendall(bytes(header) + mask + masked)


@pytest.fixture(scope="module")
def devtools_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start headless Chromium and yield the WebSocket URL of its first page."""
    assert CHROMIUM is not None
    profile = tmp_path_factory.mktemp("chromium-profile")
    log_path = profile.parent / "chromium.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        port = _wait_for_devtools_port(profile / "DevToolsActivePort", process, log_path)
        # An opener without proxies: the request must stay on 127.0.0.1 even if a proxy is configured.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{port}/json/list", timeout=CALL_TIMEOUT_S) as response:
            targets = json.load(response)
        yield next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_for_devtools_port(port_file: Path, process: subprocess.Popen[bytes], log_path: Path) -> int:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log_path.read_text(errors="replace")
            pytest.fail(f"Chromium exited with code {process.returncode}: {output}")
        if port_file.is_file():
            lines = port_file.read_text().splitlines()
            if lines and lines[0].isdigit():
                return int(lines[0])
        time.sleep(0.1)
    pytest.fail(f"Chromium did not open a DevTools port within {STARTUP_TIMEOUT_S} s")


def load_in_browser(
    devtools_url: str, report: Path, size: tuple[int, int], screenshot: Path
) -> dict[str, Any]:
    """Open ``report`` at ``size``, save a full-page screenshot and return the page state and events."""
    page = DevToolsConnection(devtools_url)
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.call(f"{domain}.enable")
        width, height = size
        page.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
        )
        page.events.clear()
        page.call("Page.navigate", {"url": report.as_uri()})
        page.wait_for_event("Page.loadEventFired")

        result = page.call("Runtime.evaluate", {"expression": PAGE_STATE_JS, "awaitPromise": True})
        state = json.loads(result["result"]["value"])

        content = page.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = page.call(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": content["height"], "scale": 1},
            },
        )
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        keep_folder = os.environ.get("MEDXAI_REPORT_SCREENSHOTS")
        if keep_folder:
            Path(keep_folder).mkdir(parents=True, exist_ok=True)
            shutil.copy(screenshot, Path(keep_folder) / screenshot.name)

        # Drop the state from the previous page: events are only those of this navigation.
        state["events"] = list(page.events)
        return state
    finally:
        page.close()


def console_errors(events: list[dict[str, Any]]) -> list[str]:
    errors = []
    for event in events:
        params = event["params"]
        if event["method"] == "Runtime.exceptionThrown":
            errors.append(str(params["exceptionDetails"]))
        elif event["method"] == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            errors.append(str(params["args"]))
        elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(f"{params['entry'].get('url', '')}: {params['entry']['text']}")
    return errors


def requested_urls(events: list[dict[str, Any]]) -> list[str]:
    return [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]


def png_width(path: Path) -> int:
    # The width is the first field of the IHDR chunk, at byte 16 of a PNG file.
    return struct.unpack(">I", path.read_bytes()[16:20])[0]


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_full_report_in_browser(
    full_run_dir: Path, devtools_url: str, tmp_path: Path, size: tuple[int, int]
) -> None:
    report = build_report(full_run_dir)
    screenshot = tmp_path / f"report-full-{size[0]}px.png"

    state = load_in_browser(devtools_url, report, size, screenshot)

    assert [section["id"] for section in state["sections"]] == SECTION_IDS
    for section in state["sections"]:
        assert section["textLength"] > len(section["heading"]), f"section {section['id']} is empty"
    # 3 curves/confusion figures, summary.png, 11 grid cells, radar.png.
    assert len(state["images"]) >= 15
    for img in state["images"]:
        assert img["decoded"], f"image '{img['alt']}' did not decode"
        assert img["naturalWidth"] > 0, f"image '{img['alt']}' has no pixels"
        assert 0 < img["shownWidth"] <= size[0], f"image '{img['alt']}' is wider than the viewport"
    assert console_errors(state["events"]) == []
    assert all(url.startswith(("file:", "data:")) for url in requested_urls(state["events"]))
    assert state["scripts"] == 0
    # Wide tables and code scroll inside their own box, so the page itself never scrolls sideways.
    assert state["scrollWidth"] <= state["innerWidth"]
    assert state["wrongRows"] == 1
    assert IG_FAILURE in state["text"]
    assert QUANTUS_FAILURE in state["text"]
    assert png_width(screenshot) == size[0]


def test_degraded_report_in_browser(run_dir_factory: Any, devtools_url: str, tmp_path: Path) -> None:
    run_dir = run_dir_factory(parts=["config"])
    report = build_report(run_dir)

    state = load_in_browser(devtools_url, report, PHONE, tmp_path / "report-config-only-390px.png")

    assert [section["id"] for section in state["sections"]] == SECTION_IDS
    assert state["images"] == []
    assert console_errors(state["events"]) == []
    assert state["scrollWidth"] <= state["innerWidth"]
    assert "Missing: test_metrics.json" in state["text"]
    assert "Missing: explanations/" in state["text"]
    assert "Missing: quantus/" in state["text"]
