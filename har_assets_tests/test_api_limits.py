"""Bounded work per request, on the real server (`har serve`, one worker, production limits) over HTTP: hostile
bodies under and over the body limit are refused with 4xx in the error shape, while /health keeps answering and
the server's peak memory stays bounded. Timings are the serve benchmark's; here a stall is anything near a
second (it was 23 s for 3M non-numeric items before bodies were counted before parsing)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from har_assets.config import PreprocessConfig
from har_assets.serving.schemas import example_windows_payload
from har_assets_tests.apiserver import serving
from har_assets_tests.stack import base_env

CFG = PreprocessConfig()
STALL_S = 1.0


def _sensor_list(key: str, item: bytes, n: int) -> bytes:
    return b'{"accelerometer": {"' + key.encode() + b'": [' + b",".join([item] * n) + b"]}}"


def hostile() -> Iterator[tuple[str, str, bytes, str, set[int]]]:
    """(case, path, body, content type, accepted statuses): the payloads of the load test, made here."""
    yield "3M non-numeric items (11 MB)", "/predict", _sensor_list("timestamps_ms", b'"a"', 3_000_000), \
        "application/json", {413}
    yield "7.6M items (over the 16 MB body limit)", "/predict", _sensor_list("x", b'"ab"', 7_600_000), \
        "application/json", {413}
    window = example_windows_payload(CFG)["windows"][0]
    yield "1,025 windows as JSON", "/predict/windows", json.dumps({"windows": [window] * 1025}).encode(), \
        "application/json", {413}
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((1025, 200, 6), np.float32))
    yield "1,025 windows as .npy", "/predict/windows", buffer.getvalue(), "application/x-npy", {413}
    yield "10^6 samples per list", "/predict", _sensor_list("timestamps_ms", b"1", 1_000_000), \
        "application/json", {413}
    yield "1M non-numeric window values", "/predict/windows", b'{"windows": [' + b",".join([b'[["x"]]'] * 1_000_000) \
        + b"]}", "application/json", {413, 422}
    yield "deep nesting", "/predict", b"[" * 200_000, "application/json", {400}
    yield "deep nesting, windows", "/predict/windows", b'{"windows": ' + b"[" * 200_000, "application/json", {400}
    yield "bad UTF-8", "/predict", b'{"accelerometer": "\xff\xfe\xfd"}', "application/json", {400, 422}
    yield "huge integer", "/predict/windows", b'{"windows": [[[1' + b"0" * 100_000 + b"]]]}", "application/json", \
        {400, 422}
    yield "pickle, not .npy", "/predict/windows", b"\x80\x04\x95" + b"\x00" * 64, "application/x-npy", {400}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """`har serve` on a tiny registered champion, with the production limits; (base URL, server pid)."""
    with serving(tmp_path_factory, "api-limits") as found:
        yield found


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


def post(base: str, path: str, body: bytes, content_type: str) -> httpx.Response | str:
    """The response, or how the connection ended when the server stopped reading an oversized body."""
    try:
        with httpx.Client(trust_env=False, timeout=60) as c:
            return c.post(f"{base}{path}", content=body, headers={"content-type": content_type})
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
        return f"connection closed by the server ({type(exc).__name__})"


POLL_HEALTH = """
import json, sys, time, httpx
base, stop = sys.argv[1], sys.argv[2]
seen = []
with httpx.Client(trust_env=False, timeout=30) as c:
    while not seen or not __import__("os").path.exists(stop):
        start = time.perf_counter()
        assert c.get(base + "/health").status_code == 200
        seen.append(time.perf_counter() - start)
        time.sleep(0.005)
print(json.dumps(seen))
"""


def test_hostile_bodies_get_4xx_without_stalling_the_server(server: tuple[str, int], tmp_path: Path) -> None:
    base, pid = server
    payloads = list(hostile())  # built before /health is timed
    stop = tmp_path / "stop"
    before = peak_rss_mb(pid)
    # /health is timed from its own process: this one holds its GIL while it sends tens of MB
    poller = subprocess.Popen([sys.executable, "-c", POLL_HEALTH, base, str(stop)], stdout=subprocess.PIPE,
                              text=True, env=base_env())
    try:
        for case, path, body, content_type, statuses in payloads:
            r = post(base, path, body, content_type)
            if isinstance(r, str):  # the server may cut an oversized upload short; it must still be alive
                assert len(body) > 16 * 1024 * 1024, f"{case}: {r}"
                continue
            assert r.status_code in statuses, f"{case}: {r.status_code} {r.text[:300]}"
            error = r.json()
            assert set(error) == {"detail", "kind", "error_count", "errors"} and error["errors"], f"{case}: {error}"
            assert all("field" in e and "msg" in e for e in error["errors"]), f"{case}: {error}"
    finally:
        stop.touch()
        out, _ = poller.communicate(timeout=60)
    health = json.loads(out)
    assert len(health) >= 5 and max(health) < STALL_S, f"/health stalled: max {max(health):.3f} s"
    assert peak_rss_mb(pid) - before < 200, f"peak RSS grew from {before:.0f} to {peak_rss_mb(pid):.0f} MB"
    with httpx.Client(trust_env=False, timeout=30) as c:  # and it still predicts
        assert c.post(f"{base}/predict/windows", json=example_windows_payload(CFG)).status_code == 200


def test_a_batch_as_npy_equals_the_same_batch_as_json(server: tuple[str, int]) -> None:
    base, _ = server
    windows = np.asarray(example_windows_payload(CFG)["windows"] * 3, dtype=np.float32)
    buffer = io.BytesIO()
    np.save(buffer, windows)
    with httpx.Client(trust_env=False, timeout=30) as c:
        as_json = c.post(f"{base}/predict/windows", json={"windows": windows.tolist()})
        as_npy = c.post(f"{base}/predict/windows", content=buffer.getvalue(),
                        headers={"content-type": "application/x-npy"})
        assert as_json.status_code == as_npy.status_code == 200
        assert as_npy.json() == as_json.json() and len(as_json.json()["labels"]) == 3
        wrong = c.post(f"{base}/predict/windows", content=b"a,b", headers={"content-type": "text/csv"})
        assert wrong.status_code == 415 and wrong.json()["errors"][0]["field"] == "header.content-type"
        missing = c.get(f"{base}/nowhere")
        assert missing.status_code == 404 and missing.json()["kind"] == "not_found"
        method = c.delete(f"{base}/predict")
        assert method.status_code == 405 and "POST" in method.headers["allow"]
        assert method.json()["kind"] == "method_not_allowed"


def npy_header(shape: object, descr: object = "<f4", fortran_order: object = False, version: int = 1) -> bytes:
    """A .npy header as np.save writes it (numpy's own writer), declaring whatever it is given."""
    buffer = io.BytesIO()
    write = np.lib.format.write_array_header_1_0 if version == 1 else np.lib.format.write_array_header_2_0
    write(buffer, {"descr": descr, "fortran_order": fortran_order, "shape": shape})
    return buffer.getvalue()


def npy_payloads() -> Iterator[tuple[str, bytes, int, str]]:
    """(case, .npy body, status, kind): headers declaring more than follows them, or what must never be loaded."""
    one = io.BytesIO()
    np.save(one, np.zeros((1, CFG.window_size, len(CFG.channels)), np.float32))
    yield "(10**13,) float32 and 100 bytes", npy_header((10**13,)) + bytes(100), 400, "invalid_npy"
    yield "(10**13, 200, 6) float32", npy_header((10**13, 200, 6)), 400, "invalid_npy"
    yield "(2**62, 200, 6) float64, format 2.0", npy_header((2**62, 200, 6), "<f8", version=2), 400, "invalid_npy"
    yield "(1024, 200, 6) and one window's bytes", npy_header((1024, 200, 6)) + one.getvalue()[128:], 400, \
        "invalid_npy"
    yield "a window short of one byte", one.getvalue()[:-1], 400, "invalid_npy"
    yield "negative shape", npy_header((-1, 200, 6)), 400, "invalid_npy"
    yield "Python objects (a pickle)", npy_header((1, 200, 6), "|O") + bytes(9600), 400, "invalid_npy"
    yield "fortran_order not a bool", npy_header((1, 200, 6), fortran_order="yes") + bytes(4800), 400, "invalid_npy"
    yield "format 3.0", b"\x93NUMPY\x03\x00" + one.getvalue()[8:], 400, "invalid_npy"
    yield "a header length of 4 GiB", b"\x93NUMPY\x02\x00\xff\xff\xff\xff{", 400, "invalid_npy"
    yield "(10**13, 200, 6) booleans", npy_header((10**13, 200, 6), "|b1"), 400, "invalid_npy"
    yield "1,025 windows, every byte there", npy_header((1025, 200, 6)) + bytes(1025 * 4800), 413, "too_large"


def test_npy_headers_are_checked_before_anything_is_allocated(server: tuple[str, int]) -> None:
    base, pid = server
    before = peak_rss_mb(pid)
    with httpx.Client(base_url=base, trust_env=False, timeout=60) as c:
        for case, body, status, kind in npy_payloads():
            r = c.post("/predict/windows", content=body, headers={"content-type": "application/x-npy"})
            assert (r.status_code, r.json()["kind"]) == (status, kind), f"{case}: {r.status_code} {r.text[:300]}"
            assert r.json()["errors"][0]["field"] in {"body", "body.windows"}, f"{case}: {r.text[:300]}"
        windows = np.asarray(example_windows_payload(CFG)["windows"] * 2, dtype=np.float32)
        as_c, as_fortran = io.BytesIO(), io.BytesIO()
        np.save(as_c, windows)
        np.save(as_fortran, np.asfortranarray(windows))
        answers = [c.post("/predict/windows", content=b.getvalue(), headers={"content-type": "application/x-npy"})
                   for b in (as_c, as_fortran)]
        assert [a.status_code for a in answers] == [200, 200] and answers[0].json() == answers[1].json()
    assert peak_rss_mb(pid) - before < 100, f"peak RSS grew from {before:.0f} to {peak_rss_mb(pid):.0f} MB"
