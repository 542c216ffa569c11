"""The `sinernn` command: every pipeline job, runnable outside DVC too.

    sinernn validate                             check params.yaml and exit
    sinernn repro [-j N] [STAGE ...]             the DVC pipeline, independent stages at once (dvc.lock as dvc repro)
    sinernn plan                                 its critical path and wall clock on 1-16 cores, from the last run
    sinernn generate --dataset clean             data/processed/clean.npz (+ .json manifest)
    sinernn tune --dataset clean --arch lstm    tuned/clean/lstm.json (an Optuna study; see --help)
    sinernn storage-proxy --storage URL          Optuna's gRPC proxy in front of a storage
    sinernn train --dataset clean --arch lstm    models/clean/lstm/{model.pt,train.json}
    sinernn evaluate --dataset clean             reports/eval/clean.json, predictions, rollouts
    sinernn summarize                            reports/metrics.json, scores/, comparison/
    sinernn diagnose --example 1                 what is wrong with a published example (or --dataset/--all)
    sinernn diagnose --code my_setup.py          the same checks on your own model and tensors (runs your file)
    sinernn measure delay --item gru             one measurement of the research answer (diagnose --all, claims gather)
    sinernn report                               reports/REPORT.md from the measurements
    sinernn register --dataset clean             models in the MLflow registry, @champion decided
    sinernn predict --model models:/sinernn-clean@champion --input s.csv --horizon 20
    sinernn serve --dataset clean [--port 5001]  the champion over HTTP, checked before it is served
    sinernn retrain                              next data snapshot, dvc exp run, champion decision

Errors meant for the user (bad params, missing or corrupt data, a diverging run, an unreachable
tracking server) print one line and exit non-zero; nothing half-written is left behind. Exit codes:
2 bad input, 3 diverged, 4 tracking store unreachable, 74 no space left on the disk, 70 an unexpected
error (a bug); `retrain` adds 0 promoted, 1 kept, 75 another retrain is running; `repro` exits with
the code of the first stage that failed, 130 on Ctrl-C (128 + the signal for SIGTERM, SIGHUP).
"""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

from sinernn.parallel.handoff import run_in_worker

# Under `sinernn repro` a stage hands its command to the resident worker (sinernn/parallel/), which
# has torch and MLflow imported already; so this module imports the rest only once it runs here.


def build_parser() -> argparse.ArgumentParser:
    from sinernn.commands import COMMANDS

    parser = argparse.ArgumentParser(
        prog="sinernn",
        description="Why can't my PyTorch RNN learn a sine wave? Generate, train, evaluate, summarize.",
        epilog="Inside the pipeline these run as DVC stages: `dvc repro` runs them all.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        sub = subparsers.add_parser(command.name, help=command.help, description=command.description or command.help)
        sub.add_argument("--params", type=Path, default=Path("params.yaml"),
                         help="the params file to validate and use (default: %(default)s)")
        sub.add_argument("--set", "-S", action="append", default=[], metavar="KEY=VALUE",
                         help="override one param for this command, e.g. -S tune.n_trials=10 (repeatable; "
                              "as dvc exp run -S, but not written to params.yaml)")
        command.arguments(sub)
        sub.set_defaults(handler=command.handler)
    return parser


def run(argv: list[str]) -> int | None:
    from sinernn.commands import check_name
    from sinernn.core.config import load_params

    args = build_parser().parse_args(argv)
    if getattr(args, "code", None) is not None:  # diagnose --code: the reader's file, no params.yaml needed
        return args.handler(args, None)
    params = load_params(args.params, args.set)  # validated before any work starts
    check_name("dataset", getattr(args, "dataset", None), params.datasets)
    return args.handler(args, params)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    handed_over = run_in_worker(f"{__name__}:main_in_process", argv)
    return main_in_process(argv) if handed_over is None else handed_over


def main_in_process(argv: list[str]) -> int:
    """Run the command in this process (the worker's forked copy calls this directly)."""
    from sinernn.core.errors import EXIT_NO_SPACE, SinernnError

    try:
        code = run(argv)
        if code:
            return code
    except SinernnError as exc:
        print(f"sinernn: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("sinernn: interrupted; no outputs were written", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return _unexpected(exc)
        print(f"sinernn: error: no space left writing {exc.filename or 'an output'} ({exc.strerror}): "
              "free some space and run it again; earlier outputs are unchanged", file=sys.stderr)
        return EXIT_NO_SPACE
    except Exception as exc:  # not a user error: a bug or the machine; never "kept" (1)
        return _unexpected(exc)
    return 0


def _unexpected(exc: BaseException) -> int:
    import traceback

    from sinernn.core.errors import EXIT_UNEXPECTED

    traceback.print_exception(exc)
    print(f"sinernn: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
    return EXIT_UNEXPECTED


if __name__ == "__main__":
    sys.exit(main())
