"""The `sinernn` subcommands: for each, its arguments and its handler, in one table (`COMMANDS`).

A handler receives the parsed arguments and the validated params and imports its job only when it
runs, so a stage's process (and its DVC deps) holds the one job it runs. Default paths come from
sinernn/core/paths.py, the same templates dvc.yaml fills in.

(Over 300 lines on purpose: it is one table, read top to bottom like `sinernn --help`; a handler
stays a few lines because its job does the work.)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Callable

from sinernn.core import paths
from sinernn.core.config import Params
from sinernn.core.config_data import MAX_WORKERS
from sinernn.core.errors import SinernnError


@dataclasses.dataclass(frozen=True)
class Command:
    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace, Params], int | None]
    description: str | None = None


def _path_option(parser, flag: str, template: str, what: str) -> None:
    """--flag PATH whose default is a template of sinernn/core/paths.py (filled in by _path)."""
    parser.add_argument(flag, type=Path, help=f"{what} (default: {paths.shown(template)})")


def _path(value: Path | None, template: str, **names: str) -> Path:
    return value if value is not None else paths.default(template, **names)


def _dataset(parser, required: bool = True) -> None:
    parser.add_argument("--dataset", required=required, help="a key of `datasets` in params.yaml")


def _arch(parser) -> None:
    parser.add_argument("--arch", required=True, help="a key of `architectures` in params.yaml")


def check_name(kind: str, name: str | None, known: dict) -> None:
    if name is not None and name not in known:
        raise SinernnError(f"unknown {kind} {name!r}; params.yaml defines: {', '.join(sorted(known))}")


# ---- validate, generate -----------------------------------------------------------------------


def _validate(args, params) -> None:
    print(f"{args.params}: valid")


def _generate_args(parser) -> None:
    _dataset(parser)
    _path_option(parser, "--out", paths.DATA, "output .npz")


def _generate(args, params) -> None:
    from sinernn.jobs.generate import generate_job

    generate_job(params, args.dataset, _path(args.out, paths.DATA, dataset=args.dataset))


# ---- tune, storage-proxy ----------------------------------------------------------------------


def _tune_args(parser) -> None:
    _dataset(parser)
    _arch(parser)
    _path_option(parser, "--data", paths.DATA, "input .npz")
    _path_option(parser, "--out", paths.TUNED, "best values as JSON")
    parser.add_argument("--workers", type=int,
                        help=f"local worker processes on the study, 1 to {MAX_WORKERS} (default: tune.workers)")
    parser.add_argument("--storage", help="Optuna storage URL, e.g. postgresql://user@host/db (default: "
                        "$SINERNN_OPTUNA_STORAGE, then tune.storage, then sqlite:///optuna/studies.db)")


def _tune(args, params) -> None:
    from sinernn.jobs.tune import tune_job

    check_name("architecture", args.arch, params.architectures)
    if args.workers is not None and not 1 <= args.workers <= MAX_WORKERS:
        raise SinernnError(f"--workers must be between 1 and {MAX_WORKERS} (got {args.workers})")
    check_name("dataset", args.dataset, params.datasets)
    result = tune_job(params, args.dataset, args.arch, _path(args.data, paths.DATA, dataset=args.dataset),
                      _path(args.out, paths.TUNED, dataset=args.dataset, arch=args.arch),
                      workers=args.workers, storage=args.storage)
    if result.get("best_value") is None:
        print(f"{args.arch}: not tuned ({result['note']})")
    else:
        print(f"{args.arch}: best trial value {result['best_value']:.3g} (trial {result['best_trial']}) "
              f"with {result['arch'] | result['train']}")


def _proxy_args(parser) -> None:
    parser.add_argument("--storage", required=True, help="the real storage, e.g. postgresql://user@host/db")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; the "
                        "proxy has no authentication and no TLS: reach it through an SSH tunnel, docs/deployment.md)")
    parser.add_argument("--port", type=int, default=13000, help="default: %(default)s")


def _loopback(host: str) -> bool:
    """Whether an address to listen on is reachable from this machine only (a name may resolve to
    any interface, so only `localhost` counts)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _storage_proxy(args, params) -> None:
    from sinernn.track.tracking import project_root
    from sinernn.tune import storage

    if not _loopback(args.host):
        print(f"sinernn: warning: the storage proxy has no authentication and no TLS: anyone who reaches "
              f"{args.host}:{args.port} can read and rewrite every study; bind 127.0.0.1 and use an SSH "
              "tunnel (docs/deployment.md)", file=sys.stderr)
    url = storage.storage_url(params, args.storage, project_root())  # checked like a worker's
    if url.startswith("grpc://"):
        raise SinernnError("storage-proxy --storage must be the database (sqlite:/// or postgresql://), "
                           "not another proxy")
    tune = params.tune
    storage.serve_proxy(url, args.host, args.port, tune.heartbeat_interval, tune.max_retry, tune.sqlite_lock_wait)


# ---- train, evaluate, summarize ---------------------------------------------------------------


def _train_args(parser) -> None:
    _dataset(parser)
    _arch(parser)
    _path_option(parser, "--data", paths.DATA, "input .npz")
    _path_option(parser, "--model-dir", paths.MODEL_DIR, "where model.pt and train.json go")
    _path_option(parser, "--history", paths.HISTORY, "per-epoch CSV")
    parser.add_argument("--tuned", type=Path, help="tuned values to apply over params.yaml (from `sinernn tune`; "
                        f"dvc.yaml passes {paths.shown(paths.TUNED)}); default: none")


def _train(args, params) -> None:
    from sinernn.jobs.train import train_job

    check_name("architecture", args.arch, params.architectures)
    names = {"dataset": args.dataset, "arch": args.arch}
    summary = train_job(params, args.dataset, args.arch, _path(args.data, paths.DATA, **names),
                        _path(args.model_dir, paths.MODEL_DIR, **names), _path(args.history, paths.HISTORY, **names),
                        tuned_path=args.tuned)
    print(f"trained {args.arch} on {args.dataset}: best val loss {summary['best_val_loss']:.3g} "
          f"after {summary['epochs']} epochs, {summary['train_seconds']:.1f} s")


def _evaluate_args(parser) -> None:
    _dataset(parser)
    _path_option(parser, "--data", paths.DATA, "input .npz")
    _path_option(parser, "--models-dir", paths.MODELS, "trained models")
    _path_option(parser, "--metrics", paths.EVAL, "output JSON")
    _path_option(parser, "--predictions", paths.PREDICTIONS, "one-step CSVs")
    _path_option(parser, "--rollouts", paths.ROLLOUTS, "free-running CSVs")
    _path_option(parser, "--backtests", paths.BACKTESTS, "backtest MAE per step ahead")


def _evaluate(args, params) -> None:
    from sinernn.jobs.evaluate import evaluate_job

    name = {"dataset": args.dataset}
    results = evaluate_job(
        params, args.dataset, _path(args.data, paths.DATA, **name), _path(args.models_dir, paths.MODELS, **name),
        _path(args.metrics, paths.EVAL, **name), _path(args.predictions, paths.PREDICTIONS, **name),
        _path(args.rollouts, paths.ROLLOUTS, **name), _path(args.backtests, paths.BACKTESTS, **name))
    for arch, metrics in results.items():
        print(f"{args.dataset:>12} {arch:>12}  test_mse {metrics['test_mse']:.3g}")


def _summarize_args(parser) -> None:
    _path_option(parser, "--eval-dir", paths.EVAL_DIR, "per-dataset evaluation files")
    _path_option(parser, "--out", paths.METRICS, "merged metrics")
    _path_option(parser, "--scores", paths.SCORES_DIR, "a few figures per model (dvc metrics show)")
    _path_option(parser, "--comparison", paths.COMPARISON_DIR, "error by architecture per dataset (dvc plots)")


def _summarize(args, params) -> None:
    from sinernn.jobs.summarize import summarize_job

    summarize_job(params, _path(args.eval_dir, paths.EVAL_DIR), _path(args.out, paths.METRICS),
                  _path(args.scores, paths.SCORES_DIR), _path(args.comparison, paths.COMPARISON_DIR))


# ---- diagnose, report -------------------------------------------------------------------------


def _diagnose_args(parser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--example", type=int, choices=[1, 2, 3], help="one of the three published examples, as written")
    what.add_argument("--dataset", help="your setup: this dataset of params.yaml, with --arch and train.framing")
    what.add_argument("--all", action="store_true", help="the `diagnose` stage: gather every diagnose measurement "
                      "(sinernn measure) into the report's summary and figures")
    what.add_argument("--code", type=Path, metavar="FILE",
                      help="your own setup: a Python file whose build() returns model, inputs, targets (optionally "
                           "optimizer, loss, future_inputs); sinernn EXECUTES this file, as your own code, on this "
                           "machine (docs/answer.md)")
    parser.add_argument("--arch", help="with --dataset: a key of `architectures`")
    parser.add_argument("--framing", choices=["window", "time_to_value", "naive"], help="with --dataset (default: train.framing)")
    parser.add_argument("--epochs", type=int, help="training epochs, at least 1 (default: diagnose.published_epochs for "
                        "--example, 100 full-batch epochs for --code, 20 otherwise)")
    _path_option(parser, "--data-dir", paths.DATA_DIR, "with --dataset: the generated datasets")
    parser.add_argument("--parts", type=Path, help="with --all: the diagnose measurements (default: "
                        f"{paths.default(paths.MEASUREMENTS, family='diagnose')})")
    _path_option(parser, "--out", paths.DIAGNOSIS, "with --all: the summary and curves")
    _path_option(parser, "--figures", paths.FIGURES, "with --all: the plots")


def _diagnose(args, params) -> int:
    from sinernn.answer.diagnosis import describe
    from sinernn.jobs import diagnose

    if args.epochs is not None and args.epochs < 1:  # 0 would otherwise mean "the default"
        raise SinernnError(f"--epochs must be at least 1 (got {args.epochs})")
    if args.code is not None:  # params is None: the reader's file is all it reads
        if args.arch or args.framing:
            raise SinernnError("--arch and --framing go with --dataset; with --code, your build() sets the model")
        from sinernn.answer.user_code import diagnose_code

        findings = diagnose_code(args.code, args.epochs or 100)
        print(f"{args.code}, {args.epochs or 100} full-batch epochs:\n{describe(findings)}")
        return 1 if any(f.severity == "error" for f in findings) else 0
    data_dir = _path(args.data_dir, paths.DATA_DIR)
    if args.all:
        out, figures = _path(args.out, paths.DIAGNOSIS), _path(args.figures, paths.FIGURES)
        diagnose.diagnose_job(params, _path(args.parts, paths.MEASUREMENTS, family="diagnose"), out, figures)
        print(f"wrote {out} and {figures}")
        return 0
    if args.example is not None:
        findings = diagnose.diagnose_example(params, args.example, args.epochs)
        title = f"published example {args.example}"
    else:
        if not args.arch:
            raise SinernnError("diagnose --dataset needs --arch (a key of `architectures`)")
        check_name("architecture", args.arch, params.architectures)
        framing = args.framing or params.train.framing
        findings = diagnose.diagnose_setup(params, args.dataset, args.arch, framing, args.epochs or 20,
                                           data_dir / f"{args.dataset}.npz")
        title = f"{args.arch} on {args.dataset}, framing {framing}"
    print(f"{title}:\n{describe(findings)}")
    return 1 if any(f.severity == "error" for f in findings) else 0


def _claims_args(parser) -> None:
    parser.add_argument("--parts", type=Path, help="the claims measurements (default: "
                        f"{paths.default(paths.MEASUREMENTS, family='claims')})")
    _path_option(parser, "--out", paths.CLAIMS, "the summary and curves")
    _path_option(parser, "--figures", paths.CLAIM_FIGURES, "the plots")


def _claims(args, params) -> None:
    from sinernn.jobs.claims import claims_job

    out, figures = _path(args.out, paths.CLAIMS), _path(args.figures, paths.CLAIM_FIGURES)
    claims_job(params, _path(args.parts, paths.MEASUREMENTS, family="claims"), out, figures)
    print(f"wrote {out} and {figures}")


def _measure_args(parser) -> None:
    # (the names are checked by the handler: importing the table here would make it a dep of every stage)
    parser.add_argument("name", metavar="NAME", help="a measurement of sinernn/answer/measurements.py, e.g. delay, "
                        "window_ratio (docs/answer.md lists them)")
    parser.add_argument("--item", help="for a measurement run once per item: which (a published example 1-3, a "
                        "delay-task cell, a delay variant: stacked, wide, relu, transformer)")
    _path_option(parser, "--data-dir", paths.DATA_DIR, "the generated datasets")
    _path_option(parser, "--tuned-dir", paths.TUNED_DIR, "the tune stage's results (claims' importances)")
    parser.add_argument("--out", type=Path, help="the measurement as JSON (default: "
                        f"{paths.shown(paths.MEASUREMENTS)}/NAME[-ITEM].json, FAMILY diagnose or claims)")


def _measure(args, params) -> None:
    from sinernn.answer.measurements import PARTS, file_name
    from sinernn.jobs.measure import measure_job

    check_name("measurement", args.name, PARTS)
    family = PARTS[args.name].family
    out = args.out or paths.default(paths.MEASUREMENTS, family=family) / file_name(args.name, args.item)
    measure_job(params, args.name, args.item, _path(args.data_dir, paths.DATA_DIR),
                _path(args.tuned_dir, paths.TUNED_DIR), out)
    print(f"measured {args.name}{' ' + args.item if args.item else ''}: {out}")


def _report_args(parser) -> None:
    _path_option(parser, "--diagnosis", paths.DIAGNOSIS_SUMMARY, "the diagnose stage's measurements")
    _path_option(parser, "--claims", paths.CLAIMS_SUMMARY, "the claims stage's measurements")
    _path_option(parser, "--metrics", paths.METRICS, "the pipeline's metrics")
    _path_option(parser, "--out", paths.REPORT, "the report")


def _report(args, params) -> None:
    from sinernn.jobs.report import report_job

    out = _path(args.out, paths.REPORT)
    report_job(params, _path(args.diagnosis, paths.DIAGNOSIS_SUMMARY), _path(args.claims, paths.CLAIMS_SUMMARY),
               _path(args.metrics, paths.METRICS), out)
    print(f"wrote {out}")


# ---- register, predict, serve, retrain --------------------------------------------------------


def _register_args(parser) -> None:
    _dataset(parser)
    _path_option(parser, "--data", paths.DATA, "input .npz")
    _path_option(parser, "--models-dir", paths.MODELS, "trained models")
    _path_option(parser, "--eval", paths.EVAL, "evaluation results")
    _path_option(parser, "--out", paths.REGISTRY, "the decision as JSON")


def _register(args, params) -> None:
    from sinernn.jobs.register import register_job

    name = {"dataset": args.dataset}
    record = register_job(params, args.dataset, _path(args.data, paths.DATA, **name),
                          _path(args.models_dir, paths.MODELS, **name), _path(args.eval, paths.EVAL, **name),
                          _path(args.out, paths.REGISTRY, **name))
    print(f"{args.dataset}: {record['decision']}")


def _predict_args(parser) -> None:
    parser.add_argument("--model", required=True,
                        help="models:/sinernn-DATASET@champion, models:/sinernn-DATASET/VERSION, or a model.pt file")
    parser.add_argument("--input", default="-", help="CSV file, or - for standard input (default: -)")
    parser.add_argument("--column", default="value", help="the CSV column to read (default: %(default)s)")
    parser.add_argument("--horizon", type=int, default=10,
                        help="values to forecast, at most the served model's limit (default: %(default)s)")


def _predict(args, params) -> None:
    import csv

    from sinernn.core.config_data import CsvSource
    from sinernn.core.csv_series import read_csv_series, read_csv_stream
    from sinernn.jobs.predict import predict_job
    from sinernn.serving import MAX_HORIZON

    # Checked before the model is fetched: serving would refuse it only after the download.
    if not 1 <= args.horizon <= MAX_HORIZON:
        raise SinernnError(f"--horizon must be between 1 and {MAX_HORIZON} (got {args.horizon})")
    # Only the reading options of a CSV dataset apply: the input is no file under data/external/.
    options = CsvSource.model_construct(column=args.column)  # missing: error, no time column
    if args.input == "-":  # stdin, read as it comes: the same parser and errors as a file
        series, _ = read_csv_stream(sys.stdin, "standard input", options)
    elif not Path(args.input).is_file():
        raise SinernnError(f"input file {args.input} not found")
    else:
        series, _ = read_csv_series(Path(args.input), options)
    forecast = predict_job(args.model, series, args.horizon)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["step", "prediction"])
    writer.writerows([step, f"{value:.9g}"] for step, value in enumerate(forecast, 1))


def _serve_args(parser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--dataset", help="serve models:/sinernn-DATASET@champion")
    target.add_argument("--model", help="models:/NAME@ALIAS or models:/NAME/VERSION")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; "
                        "anything else exposes the model without authentication)")
    parser.add_argument("--port", type=int, default=5001, help="default: %(default)s")


def _serve(args, params) -> None:
    from sinernn.track import registry

    registry.serve(args.model or f"models:/{registry.model_name(args.dataset)}@{registry.CHAMPION}",
                   args.host, args.port)


def _retrain_args(parser) -> None:
    parser.add_argument("--snapshot", type=int, help="data snapshot to train on (default: each dataset's next one)")
    parser.add_argument("--margin", type=float, help="relative improvement a challenger needs (default: registry.margin)")


def _retrain(args, params) -> int:
    from sinernn.jobs.retrain import retrain
    from sinernn.track.tracking import project_root

    if args.set:  # it runs `dvc repro`, which reads params.yaml itself
        raise SinernnError("retrain runs the pipeline on params.yaml as it is: edit the file, not --set")
    if args.snapshot is not None and args.snapshot < 0:
        raise SinernnError(f"--snapshot must be 0 or more (got {args.snapshot})")
    if args.margin is not None and not 0 <= args.margin < 1:
        raise SinernnError(f"--margin must be in [0, 1) (got {args.margin})")
    code, entry = retrain(args.params, project_root(), args.snapshot, args.margin)
    for dataset, record in entry["decisions"].items():
        print(f"{dataset}: {record['decision']}")
    return code


# ---- repro, plan: the pipeline on every core ----------------------------------------------------


def _repro_args(parser) -> None:
    parser.add_argument("targets", nargs="*", metavar="STAGE",
                        help="stages to bring up to date with what they read from, e.g. report or train@clean-rnn; "
                             "a matrix name means all its stages (default: the whole pipeline)")
    parser.add_argument("-j", "--jobs", type=int, help="stages at once (default: the cores this process may use)")
    parser.add_argument("-f", "--force", action="store_true", help="run every stage, changed or not (dvc repro -f)")
    parser.add_argument("-k", "--keep-going", action="store_true",
                        help="after a failure, go on with the stages that do not depend on it")
    parser.add_argument("--dry", action="store_true", help="list the stages that would be checked, run nothing")
    parser.add_argument("--no-worker", action="store_true",
                        help="no resident worker: each stage imports torch and MLflow itself (slower)")


def _repro(args, params) -> int:
    from sinernn.parallel.runner import reproduce

    if args.set:  # dvc.yaml reads params.yaml itself
        raise SinernnError("repro runs the pipeline on params.yaml as it is: edit the file (or use "
                           "`dvc exp run -S KEY=VALUE`), not --set")
    if args.jobs is not None and args.jobs < 1:
        raise SinernnError(f"--jobs must be at least 1 (got {args.jobs})")
    return reproduce(Path.cwd(), args.targets, args.jobs, force=args.force, keep_going=args.keep_going,
                     use_worker=not args.no_worker, dry=args.dry)


def _plan_args(parser) -> None:
    parser.add_argument("targets", nargs="*", metavar="STAGE", help="plan for these stages (default: the whole pipeline)")
    parser.add_argument("--cores", type=int, nargs="+", default=[1, 2, 4, 8, 16],
                        help="core counts to simulate (default: %(default)s)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the plan to FILE as JSON")


def _plan(args, params) -> None:
    from sinernn.core.files import write_json
    from sinernn.parallel.plan import describe, plan

    if min(args.cores) < 1:
        raise SinernnError(f"--cores must all be at least 1 (got {args.cores})")
    result = plan(Path.cwd(), args.targets, tuple(args.cores))
    print(describe(result))
    if args.json:
        write_json(args.json, result)


def _nothing(parser) -> None:
    pass


COMMANDS = [
    Command("validate", "check params.yaml and exit", _nothing, _validate),
    Command("repro", "run the DVC pipeline with independent stages at once (-j N)", _repro_args, _repro,
            "Bring the pipeline up to date as `dvc repro` does, with every stage whose inputs are ready started "
            "at once, up to --jobs at a time: each runs as `dvc repro --single-item`, so dvc.lock and the run "
            "cache are what a serial run gives. A failed stage stops what depends on it and is named, with its "
            "exit code; Ctrl-C stops every stage. Stage times go to .dvc/tmp/sinernn/runs.json (sinernn plan)."),
    Command("plan", "the critical path and the wall clock on 1-16 cores, from the last stage times", _plan_args,
            _plan,
            "From the stage times `sinernn repro` recorded: the critical path, the total work, and the wall clock "
            "a list schedule gives on each number of --cores, beside the runs measured on this machine."),
    Command("generate", "build one dataset and write .npz + .json manifest", _generate_args, _generate),
    Command("tune", "search one architecture's hyperparameters with Optuna", _tune_args, _tune,
            "Run (or resume, or join) the Optuna study of one architecture on one dataset, then write the best "
            "values as JSON for `sinernn train --tuned`. Start the same command on several machines with one "
            "PostgreSQL --storage to spread a study over them."),
    Command("storage-proxy", "serve an Optuna storage to many workers through one gRPC proxy", _proxy_args,
            _storage_proxy,
            "Optuna's gRPC storage proxy in front of --storage: workers then use --storage grpc://HOST:PORT and "
            "the database sees one client instead of one per worker. Trials run through the proxy send no "
            "heartbeats (an Optuna limitation)."),
    Command("train", "train one architecture on one dataset", _train_args, _train),
    Command("evaluate", "score every trained architecture of one dataset", _evaluate_args, _evaluate),
    Command("summarize", f"merge per-dataset results into {paths.METRICS}", _summarize_args, _summarize),
    Command("diagnose", "say what is wrong with a setup: a published example, your params, or everything",
            _diagnose_args, _diagnose,
            "Train a setup briefly and report in plain words what is wrong with it (shape mismatches and silent "
            "broadcasting, a loss stuck at the target's variance, an input that says nothing about the target, "
            "a loss that diverges, inputs outside the training range, a crash and its cause). Exit code 1 when "
            "a problem is found."),
    Command("claims", "gather the measurement of each claim of the published answer that `diagnose` does not settle",
            _claims_args, _claims,
            "Gather the measurements behind the report's claims table (params.yaml `claims`; each one a stage, "
            "`sinernn measure`): linear predictors by "
            "memory length, gradient norms by amplitude and frequency, window/period, capacity, activation and "
            "attention on the delay task, overfitting by hidden size, and the Optuna studies' importances."),
    Command("measure", "run one measurement of the research answer (a stage of its own)", _measure_args, _measure,
            "One part of the diagnosis or of the claims table (sinernn/answer/measurements.py), written as JSON; "
            "the `diagnose --all` and `claims` stages gather them. `sinernn repro diagnose claims` runs them all."),
    Command("report", f"generate {paths.REPORT} from the measurements", _report_args, _report),
    Command("register", "register a dataset's models in MLflow and decide its champion", _register_args, _register),
    Command("predict", "forecast the next values of a series with a registered model or a checkpoint",
            _predict_args, _predict,
            "Read a series (one numeric column of a CSV file, or standard input), feed its last window to the "
            "model, and print the next HORIZON values as CSV (step,prediction)."),
    Command("serve", "serve a registered forecaster over HTTP (mlflow models serve), after checking it",
            _serve_args, _serve,
            "Resolve the model (by default the champion of --dataset), check that it is this project's pt2 export "
            "(nothing pickled, no code folder), and serve that checked copy with `mlflow models serve "
            "--env-manager local`. POST {\"inputs\": [[last W values]], \"params\": {\"horizon\": H}} to "
            "/invocations; the answer is in the data's units."),
    Command("retrain", "new data, the whole pipeline, and a champion that moves only if beaten", _retrain_args,
            _retrain,
            "Draw the next snapshot of every trained synthetic dataset (CSV datasets use their updated file), run "
            f"the pipeline with `dvc exp run --temp`, apply it, and record the decision in {paths.RETRAIN_HISTORY}. "
            "Exit codes: 0 a champion was promoted, 1 every champion was kept, 75 another retrain is running, "
            "2/3/4 the pipeline failed (bad input, diverged, tracking store) and nothing was changed, 70 an "
            "unexpected error (recorded too)."),
]
