"""Measure serving the champion: start-up and HTTP round trips.

    .venv/bin/python benchmarks/serving.py [--dataset clean] [--requests 200]

Serves models:/sinernn-<dataset>@champion from the project's store (after `make run`) exactly as
docs/deployment.md says (`sinernn serve`: the checked copy under `mlflow models serve
--env-manager local`, 127.0.0.1, a free port), then sends a window of the
dataset's last test values: --requests requests for the next value and as many for a 100-step
forecast, one at a time. Prints the start-up time, the median and 95th percentile round trip of
each, and the served answer beside `sinernn predict`'s for the same window (largest difference).
Nothing is asserted: the figures go to benchmarks/results/serving-<dataset>.json, which the
serving figures in docs/results.md are read from.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sinernn.core import data  # noqa: E402
from sinernn.track import registry  # noqa: E402

def post(url: str, payload: dict) -> tuple[float, list]:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.loads(response.read())["predictions"]
    return time.perf_counter() - started, answer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="clean")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    os.chdir(ROOT)
    uri = f"models:/{registry.model_name(args.dataset)}@{registry.CHAMPION}"
    step, config = registry.load(uri)  # also: refuses anything but our own export
    dataset, _ = data.load(ROOT / f"data/processed/{args.dataset}.npz")
    window = dataset.splits["test"].observed[0, -config["window"]:]

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    copies = set(Path(tempfile.gettempdir()).glob("sinernn-serve-*"))
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "sinernn.cli", "serve", "--model", uri, "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                urllib.request.urlopen(f"{url}/ping", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.perf_counter() - started > 180:
                    print("mlflow models serve did not start", file=sys.stderr)
                    return 1
                time.sleep(0.2)
        startup = time.perf_counter() - started
        print(f"{uri} (v{config['version']}, {config['architecture']}, window {config['window']})")
        print(f"sinernn serve start-up (check, then mlflow models serve): {startup:.1f} s")
        results = {"model": uri, "version": int(config["version"]), "architecture": config["architecture"],
                   "startup_seconds": round(startup, 2), "requests": args.requests, "horizons": {}}
        for horizon in (1, 100):
            payload = {"inputs": [window.tolist()], "params": {"horizon": horizon}}
            post(f"{url}/invocations", payload)  # warm-up
            times = [post(f"{url}/invocations", payload)[0] for _ in range(args.requests)]
            _, served = post(f"{url}/invocations", payload)
            predicted = registry.forecast(step, config, window, horizon)  # what `sinernn predict` runs
            difference = float(np.abs(np.asarray(served[0]) - predicted).max())
            results["horizons"][horizon] = {"median_ms": round(1000 * float(np.median(times)), 2),
                                            "p95_ms": round(1000 * float(np.percentile(times, 95)), 2),
                                            "max_abs_difference_to_registry_forecast": difference}
            print(f"horizon {horizon:>3}: round trip median {1000 * np.median(times):.1f} ms, "
                  f"p95 {1000 * np.percentile(times, 95):.1f} ms over {args.requests} requests; "
                  f"served vs registry.forecast (sinernn predict's function): max |diff| {difference:.1e}")
        out = ROOT / f"benchmarks/results/serving-{args.dataset}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        for copy in set(Path(tempfile.gettempdir()).glob("sinernn-serve-*")) - copies:
            shutil.rmtree(copy)  # the checked copy the server ran from
    return 0


if __name__ == "__main__":
    sys.exit(main())
