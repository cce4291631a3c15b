"""Inference service: the runtime choice, and latency/throughput of the real server on loopback.

    python benchmarks/serve.py                   # about 3 minutes
    python benchmarks/serve.py --quick           # about 2 minutes
    python benchmarks/serve.py --skip-runtimes --workers 2

1. Runtimes, in-process, on the production-size model (ModelConfig and PreprocessConfig defaults, 11
   classes): eager PyTorch, TorchScript (trace + freeze), torch.compile and ONNX Runtime as served
   (har_assets.ml.onnx_runtime); ms per batch of 1 and of 256 windows, and the largest probability
   difference from eager (parity).
2. Where one request spends its time, in-process, through the API's own functions: /predict's
   parsing and validation, preprocessing (fusion, filters, windowing), the model; a 256-window batch
   decoded from JSON and from .npy, and the model on it.
3. The real server: `har serve` in a subprocess on 127.0.0.1 with the model registered as
   champion in a temporary MLflow store. Time to ready and of the first request; p50/p95/p99 latency
   and requests/s of single-window /predict at 1, 8 and 32 concurrent clients, and with one client
   while another process keeps one core busy; windows/s of /predict/windows with batches of 256 as
   JSON and as .npy. Then hostile payloads one after another (status, time, the server's peak-RSS
   growth) while another process times /health, and the largest valid /predict. Every load phase
   stops at its time limit or request count; the server is stopped at the end.

The load comes from one asyncio process holding keep-alive connections and sending pre-encoded
requests, so it costs the shared cores little; still, client and server share the machine's two
cores, so the figures are a lower bound for a dedicated server.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import mlflow
import numpy as np
import torch
from mlflow import MlflowClient

from har_assets.config import AccelUnit, GyroUnit, PreprocessConfig
from har_assets.inference.predictor import request_samples
from har_assets.ml.bundle import ModelBundle
from har_assets.ml.hyperparams import ModelConfig
from har_assets.ml.mlflow_model import log_bundle
from har_assets.ml.model import build_model
from har_assets.ml.onnx_export import export_graph
from har_assets.ml.onnx_runtime import OnnxClassifier
from har_assets.ml.scaler import ChannelScaler
from har_assets.serving.decoding import JSON, NPY, decode_predict, decode_windows
from har_assets.serving.schemas import PredictRequest, example_predict_payload
from har_assets.signal.pipeline import preprocess_samples

CLASSES = ["ear_rubbing", "forehead_rubbing", "hair_pulling", "hand_scratching", "hand_tapping",
           "knuckles_cracking", "nail_biting", "nape_rubbing", "sitting", "smoking", "standing"]
MODEL_NAME = "har-activity"
EXAMPLE_START = 1_742_802_739_120.0


def make_bundle(cfg: PreprocessConfig, seed: int = 0) -> tuple[ModelBundle, np.ndarray]:
    """Production-size model (untrained weights cost the same to run) and 256 realistic windows."""
    torch.manual_seed(seed)
    model = build_model(ModelConfig(), len(cfg.channels), len(CLASSES)).eval()
    rng = np.random.default_rng(seed)
    X = windows_like_example(cfg)
    X = np.concatenate([X + rng.normal(0, 0.3, X.shape).astype(np.float32) for _ in range(256)])
    scaler = ChannelScaler.fit(X, cfg.channels)
    return ModelBundle(model=model, model_config=ModelConfig(), preprocess=cfg, scaler=scaler, classes=CLASSES), X


def windows_like_example(cfg: PreprocessConfig) -> np.ndarray:
    body = PredictRequest.model_validate(example_predict_payload(cfg))
    acc, gyro = body.accelerometer, body.gyroscope
    samples = request_samples(acc.timestamps_ms, acc.xyz(), AccelUnit.MILLI_G, gyro.timestamps_ms, gyro.xyz(),
                              GyroUnit.DEG_PER_S)
    return preprocess_samples("example", *samples, None, cfg)[0].X


def register(bundle: ModelBundle, X: np.ndarray, folder: Path) -> str:
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("bench", artifact_location=(folder / "artifacts").as_uri())
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id=experiment):
        info = log_bundle(bundle, X[:2])
    version = mlflow.register_model(info.model_uri, MODEL_NAME).version
    client.set_registered_model_alias(MODEL_NAME, "champion", version)
    return uri


# ---------------------------------------------------------------- 1. runtimes


def _time_per_call(fn: Callable[[], object], budget_s: float, max_calls: int) -> float:
    fn()  # warm-up
    times = []
    deadline = time.perf_counter() + budget_s
    while len(times) < max_calls and time.perf_counter() < deadline:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000


def _runtimes(model: torch.nn.Module, n_channels: int, window: int) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """name -> fn(scaled windows) -> probabilities; a runtime that cannot be built maps to an error string."""
    out: dict = {}

    def torch_fn(m: Callable) -> Callable[[np.ndarray], np.ndarray]:
        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return torch.softmax(m(torch.from_numpy(x)), dim=1).numpy()
        return run

    out["eager PyTorch"] = torch_fn(model)

    def one_thread(x: np.ndarray) -> np.ndarray:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return out["eager PyTorch"](x)
        finally:
            torch.set_num_threads(threads)

    out["eager PyTorch, 1 thread"] = one_thread
    example = torch.zeros(2, window, n_channels)
    try:
        with torch.inference_mode():
            traced = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, example).eval()))
        out["TorchScript (trace+freeze)"] = torch_fn(traced)
    except Exception as exc:
        out["TorchScript (trace+freeze)"] = f"unavailable: {type(exc).__name__}: {str(exc)[:120]}"
    try:
        compiled = torch.compile(model, dynamic=True)
        start = time.perf_counter()
        torch_fn(compiled)(np.zeros((2, window, n_channels), np.float32))
        out["torch.compile (inductor)"] = torch_fn(compiled)
        out["_compile_s"] = time.perf_counter() - start
    except Exception as exc:
        out["torch.compile (inductor)"] = f"unavailable: {type(exc).__name__}: {str(exc)[:120]}"
    try:
        graph = export_graph(model, window, n_channels).onnx
        out["ONNX Runtime, 1 thread (served)"] = OnnxClassifier(graph, threads=1).predict_proba
    except Exception as exc:
        out["ONNX Runtime, 1 thread (served)"] = f"unavailable: {type(exc).__name__}: {str(exc)[:160]}"
    return out


def bench_runtimes(bundle: ModelBundle, X: np.ndarray, budget_s: float) -> list[dict]:
    scaled = bundle.scaler.transform(X)
    one, batch = scaled[:1].copy(), scaled[:256].copy()
    runtimes = _runtimes(bundle.model, scaled.shape[2], scaled.shape[1])
    compile_s = runtimes.pop("_compile_s", None)
    reference = runtimes["eager PyTorch"](batch)
    rows = []
    for name, fn in runtimes.items():
        if isinstance(fn, str):
            rows.append({"runtime": name, "error": fn})
            continue
        diff = float(np.abs(fn(batch) - reference).max())
        rows.append({"runtime": name, "ms_batch_1": _time_per_call(lambda f=fn: f(one), budget_s, 2000),
                     "ms_batch_256": _time_per_call(lambda f=fn: f(batch), budget_s, 50), "max_abs_diff": diff})
    if compile_s is not None:
        for row in rows:
            if row["runtime"].startswith("torch.compile"):
                row["first_call_s"] = round(compile_s, 1)
    return rows


# ---------------------------------------------------------------- 2. where a request's time goes


def bench_breakdown(bundle: ModelBundle, body: bytes, batch: bytes, budget_s: float) -> dict[str, float]:
    """The request path's parts, in-process, exactly as the API calls them."""
    cfg = bundle.preprocess
    shape = (cfg.window_size, len(cfg.channels))
    parsed = decode_predict(body, 90_000)
    acc, gyro = parsed.accelerometer, parsed.gyroscope

    def to_windows() -> np.ndarray:
        samples = request_samples(acc.timestamps_ms, acc.xyz(), AccelUnit.MILLI_G, gyro.timestamps_ms, gyro.xyz(),
                                  GyroUnit.DEG_PER_S)
        return preprocess_samples("request", *samples, None, cfg)[0].X

    X = to_windows()
    X256 = decode_windows(batch, JSON, 1024, shape)
    served = OnnxClassifier(export_graph(bundle.model, *shape).onnx, threads=1)

    def model(windows: np.ndarray) -> np.ndarray:
        return served.predict_proba(bundle.scaler.transform(windows))

    return {
        "validate_json_ms": _time_per_call(lambda: decode_predict(body, 90_000), budget_s, 500),
        "preprocess_ms": _time_per_call(to_windows, budget_s, 500),
        "model_ms": _time_per_call(lambda: model(X), budget_s, 500),
        "batch256_decode_json_ms": _time_per_call(lambda: decode_windows(batch, JSON, 1024, shape), budget_s, 20),
        "batch256_decode_npy_ms": _time_per_call(lambda: decode_windows(npy_bytes(X256), NPY, 1024, shape),
                                                 budget_s, 50),
        "batch256_model_ms": _time_per_call(lambda: model(X256), budget_s, 50),
    }


# ---------------------------------------------------------------- 3. the real server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(uri: str, port: int, args: argparse.Namespace, log: Path) -> subprocess.Popen:
    env = {**os.environ, "HAR_MODEL_POLL_SECONDS": "0"}
    if args.torch_threads:
        env["HAR_TORCH_THREADS"] = str(args.torch_threads)
    cmd = [sys.executable, "-m", "har_assets.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--tracking-uri", uri, "--poll-seconds", "0", "--log-level", "warning", "--workers", str(args.workers)]
    with log.open("wb") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(base: str, proc: subprocess.Popen, limit_s: float = 120) -> float:
    """Seconds until /ready says ready (the model loaded and warmed up)."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {limit_s:g} s")


def http_request(path: str, body: bytes, content_type: str = "application/json") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _connection(port: int, request: bytes, deadline: float, budget: list[int], latencies: list[float],
                      failures: list[int]) -> None:
    """One keep-alive connection sending the same pre-encoded request until the time or the budget runs out."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline and budget[0] > 0:
            budget[0] -= 1
            start = time.perf_counter()
            writer.write(request)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            (latencies.append(time.perf_counter() - start) if status == 200 else failures.append(status))
    finally:
        writer.close()


def load(port: int, request: bytes, clients: int, seconds: float, max_requests: int) -> dict:
    """`clients` connections from one asyncio process, each waiting for its answer before the next request: a
    client that costs the server's cores little, so the figures measure the server."""
    latencies: list[float] = []
    failures: list[int] = []

    async def run() -> float:
        for _ in range(clients):  # connect and warm up, not counted
            await _connection(port, request, time.perf_counter() + 5, [1], [], [])
        start = time.perf_counter()
        shared = [max_requests]  # one request budget for all connections
        await asyncio.gather(*(_connection(port, request, start + seconds, budget, latencies, failures)
                               for budget in [shared] * clients))
        return time.perf_counter() - start

    wall = asyncio.run(run())
    ms = np.asarray(latencies) * 1000
    return {"clients": clients, "requests": len(latencies), "failed": len(failures), "seconds": round(wall, 2),
            "req_per_s": len(latencies) / wall, "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "p99_ms": float(np.percentile(ms, 99))}


BUSY = "import time\nend = time.time() + float(__import__('sys').argv[1])\nwhile time.time() < end: pass"


def with_busy_core(seconds: float, fn: Callable[[], dict]) -> dict:
    """`fn()` while another process keeps one core busy (a pure-Python loop)."""
    busy = subprocess.Popen([sys.executable, "-c", BUSY, str(seconds + 30)])
    try:
        time.sleep(0.5)
        return fn()
    finally:
        busy.kill()
        busy.wait()


def npy_bytes(X: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, X.astype(np.float32))
    return buffer.getvalue()


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


def hostile_payloads(window: list) -> list[tuple[str, str, bytes, str]]:
    """The payloads that stalled or bloated the server before bodies were counted before parsing."""
    def sensor_list(item: bytes, n: int) -> bytes:
        return b'{"accelerometer": {"timestamps_ms": [' + b",".join([item] * n) + b"]}}"

    return [
        ("3M non-numeric list items (11 MB)", "/predict", sensor_list(b'"a"', 3_000_000), "application/json"),
        ("7.6M items (27 MB, over the body limit)", "/predict", sensor_list(b'"ab"', 7_600_000), "application/json"),
        ("10^6 samples in one list", "/predict", sensor_list(b"1", 1_000_000), "application/json"),
        ("1,025 windows (JSON)", "/predict/windows", json.dumps({"windows": [window] * 1025}).encode(),
         "application/json"),
        ("1,025 windows (.npy)", "/predict/windows", npy_bytes(np.zeros((1025, 200, 6))), "application/x-npy"),
        ("deep nesting", "/predict", b"[" * 200_000, "application/json"),
    ]


POLL_HEALTH = """
import json, os, sys, time, httpx
seen = []
with httpx.Client(timeout=60) as c:
    while not seen or not os.path.exists(sys.argv[2]):
        start = time.perf_counter(); c.get(sys.argv[1] + "/health"); seen.append(time.perf_counter() - start)
        time.sleep(0.005)
print(json.dumps(seen))
"""


def bench_hostile(base: str, pid: int, payloads: list[tuple[str, str, bytes, str]], largest: bytes) -> dict:
    """Each payload's answer, time and the server's peak-RSS growth, with /health timed from another process."""
    stop = Path(tempfile.mkdtemp()) / "stop"
    poller = subprocess.Popen([sys.executable, "-c", POLL_HEALTH, base, str(stop)], stdout=subprocess.PIPE, text=True)
    rows = []
    try:
        time.sleep(0.3)
        for case, path, body, content_type in [*payloads, ("largest valid /predict (90,000 samples per sensor, "
                                                           f"{len(largest) / 2**20:.1f} MB)", "/predict", largest,
                                                           "application/json")]:
            before = peak_rss_mb(pid)
            start = time.perf_counter()
            try:
                status = str(httpx.post(f"{base}{path}", content=body, headers={"content-type": content_type},
                                        timeout=120).status_code)
            except httpx.HTTPError as exc:
                status = f"cut off ({type(exc).__name__})"
            rows.append({"payload": case, "status": status, "ms": (time.perf_counter() - start) * 1000,
                         "peak_rss_growth_mb": peak_rss_mb(pid) - before})
    finally:
        stop.touch()
        health = np.asarray(json.loads(poller.communicate(timeout=120)[0])) * 1000
    return {"payloads": rows, "health_requests": len(health), "health_p50_ms": float(np.percentile(health, 50)),
            "health_max_ms": float(health.max())}


def largest_predict(cfg: PreprocessConfig, samples: int = 90_000) -> bytes:
    """A valid /predict body at the default sample limit: 15 min at 100 Hz of a wiggling wrist."""
    t = EXAMPLE_START + np.arange(samples) * 10.0
    wave = np.round(300 * np.sin(np.arange(samples) / 20.0), 1)

    def sensor(offset: float, unit: str, base: float) -> dict:
        return {"timestamps_ms": (t + offset).tolist(), "x": wave.tolist(), "y": (wave / 2).tolist(),
                "z": (wave / 4 + base).tolist(), "unit": unit}

    return json.dumps({"accelerometer": sensor(0, "milli-g", 980.0), "gyroscope": sensor(3, "deg/s", 0.0)}).encode()


def bench_server(uri: str, single: bytes, batch: np.ndarray, args: argparse.Namespace, log: Path) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(uri, port, args, log)
    batch_json = json.dumps({"windows": np.round(batch.astype(np.float64), 5).tolist()}).encode()
    try:
        ready_s = wait_ready(base, proc)
        first_start = time.perf_counter()
        first = httpx.post(f"{base}/predict", content=single, headers={"content-type": "application/json"})
        first_ms = (time.perf_counter() - first_start) * 1000
        assert first.status_code == 200, first.text
        one = http_request("/predict", single)
        predict = [load(port, one, c, args.seconds, args.max_requests) for c in (1, 8, 32)]
        busy = with_busy_core(args.seconds, lambda: load(port, one, 1, args.seconds, args.max_requests))
        busy["clients"] = "1, one core busy"
        windows = []
        for label, request in (("JSON", http_request("/predict/windows", batch_json)),
                               (".npy", http_request("/predict/windows", npy_bytes(batch), "application/x-npy"))):
            for c in (1, 2):
                row = load(port, request, c, args.seconds, max(args.max_requests // 10, 20))
                windows.append({**row, "body": label, "windows_per_s": row["req_per_s"] * len(batch)})
        hostile = None if args.skip_hostile else bench_hostile(
            base, _server_pid(proc), hostile_payloads(batch[0].tolist()), largest_predict(PreprocessConfig()))
        return {"ready_s": ready_s, "first_request_ms": first_ms, "predict": [*predict, busy],
                "predict_windows": windows, "hostile": hostile}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _server_pid(proc: subprocess.Popen) -> int:
    """The process answering requests: the server itself with one worker (its workers' peak is not summed)."""
    return proc.pid


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = [max(14, len(c) + 2, *(len(str(r.get(c, ""))) + 2 for r in rows if isinstance(r.get(c), str)))
              for c in columns]
    print("  " + "".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        cells = []
        for c, w in zip(columns, widths, strict=True):
            v = row.get(c, "")
            cells.append(f"{v:>{w}.4g}" if isinstance(v, float) else f"{v!s:>{w}}")
        print("  " + "".join(cells))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter phases (5 s each)")
    parser.add_argument("--seconds", type=float, default=12.0, help="time limit of each load phase")
    parser.add_argument("--max-requests", type=int, default=3000, help="request limit of each load phase")
    parser.add_argument("--torch-threads", type=int, default=None, help="HAR_TORCH_THREADS for the server "
                        "(default: the server's own default, 1)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes of the server")
    parser.add_argument("--skip-runtimes", action="store_true")
    parser.add_argument("--skip-server", action="store_true")
    parser.add_argument("--skip-hostile", action="store_true", help="no hostile-payload phase")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if args.quick:
        args.seconds = min(args.seconds, 5.0)
    args.skip_hostile = args.skip_hostile or args.workers > 1  # its memory figure reads one server process
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"load average {os.getloadavg()[0]:.2f} (other processes skew every figure: run it on a quiet machine)")

    cfg = PreprocessConfig()
    bundle, X = make_bundle(cfg)
    single = json.dumps(example_predict_payload(cfg)).encode()
    batch = X[:256]
    batch_json = json.dumps({"windows": np.round(batch.astype(np.float64), 5).tolist()}).encode()
    print(f"payloads: single-window /predict {len(single) / 1024:.0f} KiB, 256-window batch "
          f"{len(batch_json) / 1024 / 1024:.1f} MiB as JSON, {len(npy_bytes(batch)) / 1024 / 1024:.1f} MiB as .npy")
    figures: dict = {}
    budget = 2.0 if args.quick else 4.0
    if not args.skip_runtimes:
        figures["runtimes"] = bench_runtimes(bundle, X, budget)
        print("\ninference runtimes (in-process, median ms per call):")
        print_table(figures["runtimes"], ["runtime", "ms_batch_1", "ms_batch_256", "max_abs_diff", "first_call_s"])
        for row in figures["runtimes"]:
            if "error" in row:
                print(f"  {row['runtime']}: {row['error']}")
    figures["breakdown"] = bench_breakdown(bundle, single, batch_json, budget)
    print("\nwhere the time goes, in-process (median ms): single-window /predict:",
          ", ".join(f"{k} {v:.2f}" for k, v in figures["breakdown"].items() if not k.startswith("batch")),
          "| 256-window batch:",
          ", ".join(f"{k[9:]} {v:.1f}" for k, v in figures["breakdown"].items() if k.startswith("batch")))

    if not args.skip_server:
        with tempfile.TemporaryDirectory(prefix="har-bench-") as tmp:
            uri = register(bundle, X, Path(tmp))
            log = Path(tmp) / "server.log"
            try:
                figures["server"] = bench_server(uri, single, batch, args, log)
            except Exception:
                print(log.read_text()[-3000:], file=sys.stderr)
                raise
        server = figures["server"]
        print(f"\nserver (uvicorn, {args.workers} worker(s), torch threads {args.torch_threads or 'server default'}); "
              f"ready (model loaded and warmed up) after {server['ready_s']:.1f} s, first request "
              f"{server['first_request_ms']:.1f} ms; phases ≤ {args.seconds:g} s / ≤ {args.max_requests} requests; "
              "client: one asyncio process, keep-alive connections:")
        print("  POST /predict, one window (4.3 s of raw samples):")
        print_table(server["predict"], ["clients", "requests", "failed", "req_per_s", "p50_ms", "p95_ms", "p99_ms"])
        print(f"  POST /predict/windows, batches of {len(batch)}:")
        print_table(server["predict_windows"], ["body", "clients", "requests", "failed", "windows_per_s", "p50_ms",
                                                "p95_ms", "p99_ms"])
        if server["hostile"]:
            h = server["hostile"]
            print(f"  hostile payloads, one after another; /health from another process meanwhile: "
                  f"{h['health_requests']} requests, p50 {h['health_p50_ms']:.1f} ms, max {h['health_max_ms']:.1f} ms")
            print_table(h["payloads"], ["payload", "status", "ms", "peak_rss_growth_mb"])
    figures["load_average_end"] = os.getloadavg()[0]
    print(f"\nload average at the end: {figures['load_average_end']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
