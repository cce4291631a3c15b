"""Inference service: the runtime choice, and latency/throughput of the real server on loopback.

    python benchmarks/serve.py                   # about 2 minutes
    python benchmarks/serve.py --quick           # about 1 minute
    python benchmarks/serve.py --skip-runtimes --torch-threads 1

1. Runtimes, in-process, on the production-size model (ModelConfig and PreprocessConfig defaults, 11
   classes): eager PyTorch, TorchScript (trace + freeze), torch.compile and ONNX Runtime (if
   installed: `pip install -e .[bench]`); ms per batch of 1 and of 256 windows, and the largest
   probability difference from eager (parity).
2. Where one single-window /predict spends its time, in-process: request validation,
   preprocessing (fusion, filters, windowing), the model.
3. The real server: `har serve` in a subprocess on 127.0.0.1 with the model registered as
   champion in a temporary MLflow store. p50/p95/p99 latency and requests/s of single-window
   /predict at 1, 8 and 32 concurrent clients, and windows/s of /predict/windows with batches of
   256. Every phase stops at its time limit or request count, whichever comes first; the server
   is stopped at the end.

Client and server share the machine's cores, so the figures are a lower bound for a dedicated server.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import mlflow
import numpy as np
import torch
from mlflow import MlflowClient

from har_assets.config import AccelUnit, GyroUnit, PreprocessConfig
from har_assets.ml.bundle import ModelBundle
from har_assets.ml.hyperparams import ModelConfig
from har_assets.ml.mlflow_model import log_bundle
from har_assets.ml.model import build_model
from har_assets.ml.scaler import ChannelScaler
from har_assets.serving.predictor import recording_from_samples
from har_assets.serving.schemas import PredictRequest, WindowsRequest, example_predict_payload
from har_assets.signal.pipeline import preprocess

CLASSES = ["ear_rubbing", "forehead_rubbing", "hair_pulling", "hand_scratching", "hand_tapping",
           "knuckles_cracking", "nail_biting", "nape_rubbing", "sitting", "smoking", "standing"]
MODEL_NAME = "har-activity"


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
    raw = recording_from_samples(np.asarray(body.accelerometer.timestamps_ms), body.accelerometer.xyz(),
                                 AccelUnit.MILLI_G, np.asarray(body.gyroscope.timestamps_ms), body.gyroscope.xyz(),
                                 GyroUnit.DEG_PER_S)
    return preprocess(raw, cfg)[0].X


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
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            torch.onnx.export(model, (example,), str(path), input_names=["x"], output_names=["logits"],
                              dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

        def run_onnx(x: np.ndarray) -> np.ndarray:
            logits = session.run(None, {"x": x})[0]
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)

        out["ONNX Runtime"] = run_onnx
    except Exception as exc:
        out["ONNX Runtime"] = f"unavailable: {type(exc).__name__}: {str(exc)[:160]}"
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
    cfg = bundle.preprocess
    parsed = PredictRequest.model_validate_json(body)
    acc, gyro = parsed.accelerometer, parsed.gyroscope

    def to_windows() -> np.ndarray:
        raw = recording_from_samples(np.asarray(acc.timestamps_ms), acc.xyz(), AccelUnit.MILLI_G,
                                     np.asarray(gyro.timestamps_ms), gyro.xyz(), GyroUnit.DEG_PER_S)
        return preprocess(raw, cfg)[0].X

    X = to_windows()
    X256 = batch_windows(batch)
    return {
        "validate_json_ms": _time_per_call(lambda: PredictRequest.model_validate_json(body), budget_s, 500),
        "preprocess_ms": _time_per_call(to_windows, budget_s, 500),
        "model_ms": _time_per_call(lambda: bundle.predict_windows(X), budget_s, 500),
        "batch256_validate_json_ms": _time_per_call(lambda: batch_windows(batch), budget_s, 20),
        "batch256_model_ms": _time_per_call(lambda: bundle.predict_windows(X256), budget_s, 50),
    }


def batch_windows(batch: bytes) -> np.ndarray:
    return np.asarray(WindowsRequest.model_validate_json(batch).windows, dtype=np.float32)


# ---------------------------------------------------------------- 3. the real server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(uri: str, port: int, torch_threads: int | None, log: Path) -> subprocess.Popen:
    env = {**os.environ, "HAR_MODEL_POLL_SECONDS": "0", "HAR_MAX_WINDOWS": "256"}
    if torch_threads:
        env["HAR_TORCH_THREADS"] = str(torch_threads)
    cmd = [sys.executable, "-m", "har_assets.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--tracking-uri", uri, "--poll-seconds", "0", "--log-level", "warning"]
    with log.open("wb") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_ready(base: str, proc: subprocess.Popen, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"server not ready after {limit_s:g} s")


def load(base: str, path: str, body: bytes, clients: int, seconds: float, max_requests: int) -> dict:
    """`clients` threads, each with its own connection, posting `body` until the time or count runs out."""
    latencies: list[float] = []
    failures: list[int] = []
    issued = 0
    lock = threading.Lock()
    headers = {"content-type": "application/json"}
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        nonlocal issued
        with httpx.Client(base_url=base, timeout=60) as client:
            client.post(path, content=body, headers=headers)  # connect + warm-up, not counted
            while time.perf_counter() < deadline:
                with lock:
                    if issued >= max_requests:
                        return
                    issued += 1
                start = time.perf_counter()
                r = client.post(path, content=body, headers=headers)
                elapsed = time.perf_counter() - start
                (latencies if r.status_code == 200 else failures).append(elapsed if r.status_code == 200
                                                                        else r.status_code)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {"clients": clients, "requests": len(latencies), "failed": len(failures), "seconds": round(wall, 2),
            "req_per_s": len(latencies) / wall, "p50_ms": float(np.percentile(ms, 50)),
            "p95_ms": float(np.percentile(ms, 95)), "p99_ms": float(np.percentile(ms, 99))}


def bench_server(uri: str, single: bytes, batch: bytes, args: argparse.Namespace, log: Path) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(uri, port, args.torch_threads, log)
    try:
        wait_ready(base, proc)
        predict = [load(base, "/predict", single, c, args.seconds, args.max_requests) for c in (1, 8, 32)]
        windows = [load(base, "/predict/windows", batch, c, args.seconds, max(args.max_requests // 20, 10))
                   for c in (1, 2)]
        for row in windows:
            row["windows_per_s"] = row["req_per_s"] * 256
        return {"predict": predict, "predict_windows": windows}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


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
    parser.add_argument("--torch-threads", type=int, default=None, help="HAR_TORCH_THREADS for the server")
    parser.add_argument("--skip-runtimes", action="store_true")
    parser.add_argument("--skip-server", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if args.quick:
        args.seconds = min(args.seconds, 5.0)
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"load average {os.getloadavg()[0]:.2f} (other processes skew every figure: run it on a quiet machine)")

    cfg = PreprocessConfig()
    bundle, X = make_bundle(cfg)
    single = json.dumps(example_predict_payload(cfg)).encode()
    batch = json.dumps({"windows": np.round(X[:256].astype(np.float64), 5).tolist()}).encode()
    print(f"payloads: single-window /predict {len(single) / 1024:.0f} KiB, 256-window batch "
          f"{len(batch) / 1024 / 1024:.1f} MiB")
    figures: dict = {}
    budget = 2.0 if args.quick else 4.0
    if not args.skip_runtimes:
        figures["runtimes"] = bench_runtimes(bundle, X, budget)
        print("\ninference runtimes (in-process, median ms per call):")
        print_table(figures["runtimes"], ["runtime", "ms_batch_1", "ms_batch_256", "max_abs_diff", "first_call_s"])
        for row in figures["runtimes"]:
            if "error" in row:
                print(f"  {row['runtime']}: {row['error']}")
    figures["breakdown"] = bench_breakdown(bundle, single, batch, budget)
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
        print(f"\nserver (uvicorn, 1 worker, torch threads {args.torch_threads or 'default'}); "
              f"phases ≤ {args.seconds:g} s / ≤ {args.max_requests} requests:")
        print("  POST /predict, one window (4.3 s of raw samples):")
        print_table(figures["server"]["predict"], ["clients", "requests", "failed", "req_per_s", "p50_ms", "p95_ms",
                                                   "p99_ms"])
        print("  POST /predict/windows, batches of 256:")
        print_table(figures["server"]["predict_windows"], ["clients", "requests", "failed", "windows_per_s",
                                                           "p50_ms", "p95_ms", "p99_ms"])
    figures["load_average_end"] = os.getloadavg()[0]
    print(f"\nload average at the end: {figures['load_average_end']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
