"""Does rollout-aware training (train.rollout_steps) keep free-running forecasts on the signal?

    .venv/bin/python benchmarks/rollout_training.py [--dataset noisy] [--archs rnn gru lstm] [--steps 1 4]
                                                    [--json benchmarks/results/rollout_training.json]

Trains each architecture on the dataset with params.yaml's settings (not the tuned values) once per
number of rollout steps in the loss, and scores each model the way the evaluate stage does: the
one-step test MSE against the noise floor, and the 1000-step free-running rollout against the
clean signal, beside the ridge baseline's. Each step in the loss is one more forward pass per
batch, so training takes about that many times longer; the table shows the seconds too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    import torch

    from sinernn.core import data
    from sinernn.core.config import load_params
    from sinernn.core.evaluation import evaluate
    from sinernn.core.training import fit_architecture

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="noisy")
    parser.add_argument("--archs", nargs="+", default=["rnn", "gru", "lstm"])
    parser.add_argument("--steps", nargs="+", type=int, default=[1, 4, 16, 32])
    parser.add_argument("--horizon", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args()

    params = load_params(ROOT / "params.yaml")
    torch.set_num_threads(params.train.threads)
    dataset = data.generate(args.dataset, params.datasets[args.dataset], params.seed, params.train.window, ROOT)
    rows = []
    for arch_name in ["ridge", *args.archs]:
        for steps in args.steps if arch_name != "ridge" else [1]:
            cfg = params.train_for(args.dataset).model_copy(update={"rollout_steps": steps})
            started = time.perf_counter()
            fitted = fit_architecture(params.architectures[arch_name], cfg, dataset, params.seed)
            seconds = time.perf_counter() - started
            metrics = evaluate(fitted.model, dataset, "window", cfg.window, [args.horizon]).metrics
            rows.append({"arch": arch_name, "rollout_steps": steps, "train_seconds": round(seconds, 1),
                         "test_mse": metrics["test_mse"], "noise_floor_ratio": metrics["noise_floor_ratio"],
                         f"rollout_mse_{args.horizon}": metrics[f"rollout_mse_{args.horizon}"]})
            row = rows[-1]
            ratio = row["noise_floor_ratio"]
            print(f"{arch_name:6} steps {steps:3}  one-step {row['test_mse']:.3g}"
                  f"{f' ({ratio:.3f} x floor)' if ratio else ''}  rollout {row[f'rollout_mse_{args.horizon}']:.3g}"
                  f"  {seconds:.0f} s", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"dataset": args.dataset, "horizon": args.horizon, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
