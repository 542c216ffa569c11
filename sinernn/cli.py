"""The `sinernn` command: every pipeline job, runnable outside DVC too.

    sinernn validate                             check params.yaml and exit
    sinernn generate --dataset clean             data/processed/clean.npz (+ .json manifest)
    sinernn tune --arch lstm [--workers N]      tuned/lstm.json (an Optuna study; see --help)
    sinernn storage-proxy --storage URL          Optuna's gRPC proxy in front of a storage
    sinernn train --dataset clean --arch lstm    models/clean/lstm/{model.pt,train.json}
    sinernn evaluate --dataset clean             reports/eval/clean.json, predictions, rollouts
    sinernn summarize                            reports/metrics.json
    sinernn diagnose --example 1                 what is wrong with a published example (or --dataset/--all)
    sinernn report                               reports/REPORT.md from the measurements
    sinernn register --dataset clean             models in the MLflow registry, @champion decided
    sinernn predict --model models:/sinernn-clean@champion --input s.csv --horizon 20
    sinernn serve --dataset clean [--port 5001]  the champion over HTTP, checked before it is served
    sinernn retrain                              next data snapshot, dvc exp run, champion decision

Errors meant for the user (bad params, missing or corrupt data, a diverging run, an unreachable
tracking server) print one line and exit non-zero; nothing half-written is left behind. Exit codes:
2 bad input, 3 diverged, 4 tracking store unreachable, 74 no space left on the disk, 70 an unexpected
error (a bug);
`retrain` adds 0 promoted, 1 kept, 75 another retrain is running.
"""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

from sinernn.config import MAX_WORKERS, load_params
from sinernn.errors import EXIT_NO_SPACE, EXIT_UNEXPECTED, SinernnError


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--params", type=Path, default=Path("params.yaml"),
        help="the params file to validate and use (default: %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sinernn",
        description="Why can't my PyTorch RNN learn a sine wave? Generate, train, evaluate, summarize.",
        epilog="Inside the pipeline these run as DVC stages: `dvc repro` runs them all.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser("validate", help="check params.yaml and exit")
    _add_common(validate)

    generate = commands.add_parser("generate", help="build one dataset and write .npz + .json manifest")
    _add_common(generate)
    generate.add_argument("--dataset", required=True, help="a key of `datasets` in params.yaml")
    generate.add_argument("--out", type=Path, help="output .npz (default: data/processed/DATASET.npz)")

    tune = commands.add_parser(
        "tune", help="search one architecture's hyperparameters with Optuna",
        description="Run (or resume, or join) the Optuna study of one architecture on tune.dataset, "
        "then write the best values as JSON for `sinernn train --tuned`. Start the same command on "
        "several machines with one PostgreSQL --storage to spread a study over them.",
    )
    _add_common(tune)
    tune.add_argument("--arch", required=True, help="a key of `architectures` in params.yaml")
    tune.add_argument("--data", type=Path, help="input .npz (default: data/processed/TUNE_DATASET.npz)")
    tune.add_argument("--out", type=Path, help="best values as JSON (default: tuned/ARCH.json)")
    tune.add_argument("--workers", type=int,
                      help=f"local worker processes on the study, 1 to {MAX_WORKERS} (default: tune.workers)")
    tune.add_argument(
        "--storage", help="Optuna storage URL, e.g. postgresql://user@host/db (default: "
        "$SINERNN_OPTUNA_STORAGE, then tune.storage, then sqlite:///optuna/studies.db)",
    )

    proxy = commands.add_parser(
        "storage-proxy", help="serve an Optuna storage to many workers through one gRPC proxy",
        description="Optuna's gRPC storage proxy in front of --storage: workers then use "
        "--storage grpc://HOST:PORT and the database sees one client instead of one per worker. "
        "Trials run through the proxy send no heartbeats (an Optuna limitation).",
    )
    _add_common(proxy)
    proxy.add_argument("--storage", required=True, help="the real storage, e.g. postgresql://user@host/db")
    proxy.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; the "
                       "proxy has no authentication and no TLS: reach it through an SSH tunnel, docs/deployment.md)")
    proxy.add_argument("--port", type=int, default=13000, help="default: %(default)s")

    diagnose = commands.add_parser(
        "diagnose", help="say what is wrong with a setup: a published example, your params, or everything",
        description="Train a setup briefly and report in plain words what is wrong with it (shape "
        "mismatches and silent broadcasting, a loss stuck at the target's variance, an input that "
        "says nothing about the target, a crash and its cause). Exit code 1 when a problem is found.",
    )
    _add_common(diagnose)
    what = diagnose.add_mutually_exclusive_group(required=True)
    what.add_argument("--example", type=int, choices=[1, 2, 3], help="one of the three published examples, as written")
    what.add_argument("--dataset", help="your setup: this dataset of params.yaml, with --arch and train.framing")
    what.add_argument("--all", action="store_true", help="the `diagnose` stage: examples and every measurement of the report")
    diagnose.add_argument("--arch", help="with --dataset: a key of `architectures`")
    diagnose.add_argument("--framing", choices=["window", "time_to_value", "naive"], help="with --dataset (default: train.framing)")
    diagnose.add_argument("--epochs", type=int, help="training epochs, at least 1 (default: diagnose.published_epochs for --example, 20 otherwise)")
    diagnose.add_argument("--data-dir", type=Path, default=Path("data/processed"), help="default: %(default)s")
    diagnose.add_argument("--out", type=Path, default=Path("reports/diagnosis"), help="with --all (default: %(default)s)")
    diagnose.add_argument("--figures", type=Path, default=Path("reports/figures"), help="with --all (default: %(default)s)")

    report = commands.add_parser("report", help="generate reports/REPORT.md from the measurements")
    _add_common(report)
    report.add_argument("--diagnosis", type=Path, default=Path("reports/diagnosis/summary.json"), help="default: %(default)s")
    report.add_argument("--metrics", type=Path, default=Path("reports/metrics.json"), help="default: %(default)s")
    report.add_argument("--out", type=Path, default=Path("reports/REPORT.md"), help="default: %(default)s")

    register = commands.add_parser("register", help="register a dataset's models in MLflow and decide its champion")
    _add_common(register)
    register.add_argument("--dataset", required=True, help="a key of `datasets` in params.yaml")
    register.add_argument("--data", type=Path, help="input .npz (default: data/processed/DATASET.npz)")
    register.add_argument("--models-dir", type=Path, help="trained models (default: models/DATASET)")
    register.add_argument("--eval", type=Path, help="evaluation results (default: reports/eval/DATASET.json)")
    register.add_argument("--out", type=Path, help="the decision as JSON (default: reports/registry/DATASET.json)")

    predict = commands.add_parser(
        "predict", help="forecast the next values of a series with a registered model or a checkpoint",
        description="Read a series (one numeric column of a CSV file, or standard input), feed its last "
        "window to the model, and print the next HORIZON values as CSV (step,prediction).",
    )
    _add_common(predict)
    predict.add_argument("--model", required=True,
                         help="models:/sinernn-DATASET@champion, models:/sinernn-DATASET/VERSION, or a model.pt file")
    predict.add_argument("--input", default="-", help="CSV file, or - for standard input (default: -)")
    predict.add_argument("--column", default="value", help="the CSV column to read (default: %(default)s)")
    predict.add_argument("--horizon", type=int, default=10,
                         help="values to forecast, at most the served model's limit (default: %(default)s)")

    serve = commands.add_parser(
        "serve", help="serve a registered forecaster over HTTP (mlflow models serve), after checking it",
        description="Resolve the model (by default the champion of --dataset), check that it is this "
        "project's pt2 export (nothing pickled, no code folder), and serve that checked copy with "
        "`mlflow models serve --env-manager local`. POST {\"inputs\": [[last W values]], "
        "\"params\": {\"horizon\": H}} to /invocations; the answer is in the data's units.",
    )
    _add_common(serve)
    target = serve.add_mutually_exclusive_group(required=True)
    target.add_argument("--dataset", help="serve models:/sinernn-DATASET@champion")
    target.add_argument("--model", help="models:/NAME@ALIAS or models:/NAME/VERSION")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; "
                       "anything else exposes the model without authentication)")
    serve.add_argument("--port", type=int, default=5001, help="default: %(default)s")

    retrain = commands.add_parser(
        "retrain", help="new data, the whole pipeline, and a champion that moves only if beaten",
        description="Draw the next snapshot of every trained synthetic dataset (CSV datasets use their "
        "updated file), run the pipeline with `dvc exp run --temp`, apply it, and record the decision "
        "in reports/retrain.json. Exit codes: 0 a champion was promoted, 1 every champion was kept, "
        "75 another retrain is running, 2/3/4 the pipeline failed (bad input, diverged, tracking store) "
        "and nothing was changed, 70 an unexpected error (recorded too).",
    )
    _add_common(retrain)
    retrain.add_argument("--snapshot", type=int, help="data snapshot to train on (default: each dataset's next one)")
    retrain.add_argument("--margin", type=float, help="relative improvement a challenger needs (default: registry.margin)")

    train = commands.add_parser("train", help="train one architecture on one dataset")
    _add_common(train)
    train.add_argument("--dataset", required=True, help="a key of `datasets` in params.yaml")
    train.add_argument("--arch", required=True, help="a key of `architectures` in params.yaml")
    train.add_argument("--data", type=Path, help="input .npz (default: data/processed/DATASET.npz)")
    train.add_argument("--model-dir", type=Path, help="where model.pt and train.json go (default: models/DATASET/ARCH)")
    train.add_argument("--history", type=Path, help="per-epoch CSV (default: reports/history/DATASET/ARCH.csv)")
    train.add_argument("--tuned", type=Path, help="tuned values to apply over params.yaml (from `sinernn tune`); default: none")

    evaluate = commands.add_parser("evaluate", help="score every trained architecture of one dataset")
    _add_common(evaluate)
    evaluate.add_argument("--dataset", required=True, help="a key of `datasets` in params.yaml")
    evaluate.add_argument("--data", type=Path, help="input .npz (default: data/processed/DATASET.npz)")
    evaluate.add_argument("--models-dir", type=Path, help="trained models (default: models/DATASET)")
    evaluate.add_argument("--metrics", type=Path, help="output JSON (default: reports/eval/DATASET.json)")
    evaluate.add_argument("--predictions", type=Path, help="one-step CSVs (default: reports/predictions/DATASET)")
    evaluate.add_argument("--rollouts", type=Path, help="free-running CSVs (default: reports/rollouts/DATASET)")
    evaluate.add_argument("--backtests", type=Path, help="backtest MAE per step ahead (default: reports/backtests/DATASET.csv)")

    summarize = commands.add_parser("summarize", help="merge per-dataset results into reports/metrics.json")
    _add_common(summarize)
    summarize.add_argument("--eval-dir", type=Path, default=Path("reports/eval"), help="default: %(default)s")
    summarize.add_argument("--out", type=Path, default=Path("reports/metrics.json"), help="default: %(default)s")
    return parser


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


def _check_name(kind: str, name: str, known: dict) -> None:
    if name not in known:
        raise SinernnError(f"unknown {kind} {name!r}; params.yaml defines: {', '.join(sorted(known))}")


def run(argv: list[str]) -> int | None:
    args = build_parser().parse_args(argv)
    params = load_params(args.params)  # validated before any work starts
    from sinernn import jobs  # after validation: importing torch and mlflow takes seconds

    if args.command == "validate":
        print(f"{args.params}: valid")
        return
    if getattr(args, "dataset", None) is not None:
        _check_name("dataset", args.dataset, params.datasets)
    if args.command == "generate":
        jobs.generate_job(params, args.dataset, args.out or Path(f"data/processed/{args.dataset}.npz"))
    elif args.command == "tune":
        _check_name("architecture", args.arch, params.architectures)
        if args.workers is not None and not 1 <= args.workers <= MAX_WORKERS:
            raise SinernnError(f"--workers must be between 1 and {MAX_WORKERS} (got {args.workers})")
        result = jobs.tune_job(
            params, args.arch,
            args.data or Path(f"data/processed/{params.tune.dataset}.npz"),
            args.out or Path(f"tuned/{args.arch}.json"),
            workers=args.workers, storage=args.storage,
        )
        if result.get("best_value") is None:
            print(f"{args.arch}: not tuned ({result['note']})")
        else:
            print(f"{args.arch}: best val loss {result['best_value']:.3g} (trial {result['best_trial']}) "
                  f"with {result['arch'] | result['train']}")
    elif args.command == "storage-proxy":
        from sinernn.tracking import project_root
        from sinernn.tuning import serve_proxy, storage_url

        if not _loopback(args.host):
            print(f"sinernn: warning: the storage proxy has no authentication and no TLS: anyone who reaches "
                  f"{args.host}:{args.port} can read and rewrite every study; bind 127.0.0.1 and use an SSH "
                  "tunnel (docs/deployment.md)", file=sys.stderr)
        url = storage_url(params, args.storage, project_root())  # checked like a worker's
        if url.startswith("grpc://"):
            raise SinernnError("storage-proxy --storage must be the database (sqlite:/// or postgresql://), "
                               "not another proxy")
        tune = params.tune
        serve_proxy(url, args.host, args.port, tune.heartbeat_interval, tune.max_retry, tune.sqlite_lock_wait)
    elif args.command == "diagnose":
        return _diagnose(args, params, jobs)
    elif args.command == "report":
        jobs.report_job(params, args.diagnosis, args.metrics, args.out)
        print(f"wrote {args.out}")
    elif args.command == "register":
        record = jobs.register_job(
            params, args.dataset, args.data or Path(f"data/processed/{args.dataset}.npz"),
            args.models_dir or Path(f"models/{args.dataset}"), args.eval or Path(f"reports/eval/{args.dataset}.json"),
            args.out or Path(f"reports/registry/{args.dataset}.json"),
        )
        print(f"{args.dataset}: {record['decision']}")
    elif args.command == "retrain":
        from sinernn.retrain import retrain
        from sinernn.tracking import project_root

        if args.snapshot is not None and args.snapshot < 0:
            raise SinernnError(f"--snapshot must be 0 or more (got {args.snapshot})")
        if args.margin is not None and not 0 <= args.margin < 1:
            raise SinernnError(f"--margin must be in [0, 1) (got {args.margin})")
        code, entry = retrain(args.params, project_root(), args.snapshot, args.margin)
        for dataset, record in entry["decisions"].items():
            print(f"{dataset}: {record['decision']}")
        return code
    elif args.command == "serve":
        from sinernn import registry

        registry.serve(args.model or f"models:/{registry.model_name(args.dataset)}@{registry.CHAMPION}",
                       args.host, args.port)
    elif args.command == "predict":
        _predict(args, jobs)
    elif args.command == "train":
        _check_name("architecture", args.arch, params.architectures)
        summary = jobs.train_job(
            params, args.dataset, args.arch,
            args.data or Path(f"data/processed/{args.dataset}.npz"),
            args.model_dir or Path(f"models/{args.dataset}/{args.arch}"),
            args.history or Path(f"reports/history/{args.dataset}/{args.arch}.csv"),
            tuned_path=args.tuned,
        )
        print(f"trained {args.arch} on {args.dataset}: best val loss {summary['best_val_loss']:.3g} "
              f"after {summary['epochs']} epochs, {summary['train_seconds']:.1f} s")
    elif args.command == "evaluate":
        results = jobs.evaluate_job(
            params, args.dataset,
            args.data or Path(f"data/processed/{args.dataset}.npz"),
            args.models_dir or Path(f"models/{args.dataset}"),
            args.metrics or Path(f"reports/eval/{args.dataset}.json"),
            args.predictions or Path(f"reports/predictions/{args.dataset}"),
            args.rollouts or Path(f"reports/rollouts/{args.dataset}"),
            args.backtests or Path(f"reports/backtests/{args.dataset}.csv"),
        )
        for arch, metrics in results.items():
            print(f"{args.dataset:>12} {arch:>12}  test_mse {metrics['test_mse']:.3g}")
    elif args.command == "summarize":
        jobs.summarize_job(params, args.eval_dir, args.out)


def _predict(args, jobs) -> None:
    import csv
    import io

    from sinernn.config import CsvSource
    from sinernn.data import read_csv_series
    from sinernn.serving import MAX_HORIZON

    # Checked before the model is fetched: serving would refuse it only after the download.
    if not 1 <= args.horizon <= MAX_HORIZON:
        raise SinernnError(f"--horizon must be between 1 and {MAX_HORIZON} (got {args.horizon})")
    if args.input == "-":  # stdin: the same parser and errors as a file
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as handle:
            handle.write(sys.stdin.read())
        path = Path(handle.name)
    else:
        path = Path(args.input)
        if not path.is_file():
            raise SinernnError(f"input file {path} not found")
    # Only the reading options of a CSV dataset apply: the input is no file under data/external/.
    options = CsvSource.model_construct(column=args.column)  # missing: error, no time column
    try:
        series, _ = read_csv_series(path, options)
    finally:
        if args.input == "-":
            path.unlink(missing_ok=True)
    forecast = jobs.predict_job(args.model, series, args.horizon)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["step", "prediction"])
    writer.writerows([step, f"{value:.9g}"] for step, value in enumerate(forecast, 1))
    sys.stdout.write(out.getvalue())


def _diagnose(args, params, jobs) -> int:
    from sinernn.diagnosis import describe

    if args.epochs is not None and args.epochs < 1:  # 0 would otherwise mean "the default"
        raise SinernnError(f"--epochs must be at least 1 (got {args.epochs})")
    if args.all:
        jobs.diagnose_job(params, args.data_dir, args.out, args.figures)
        print(f"wrote {args.out} and {args.figures}")
        return 0
    if args.example is not None:
        findings = jobs.diagnose_example(params, args.example, args.epochs)
        title = f"published example {args.example}"
    else:
        if not args.arch:
            raise SinernnError("diagnose --dataset needs --arch (a key of `architectures`)")
        _check_name("architecture", args.arch, params.architectures)
        findings = jobs.diagnose_setup(params, args.dataset, args.arch, args.framing or params.train.framing,
                                       args.epochs or 20, args.data_dir / f"{args.dataset}.npz")
        title = f"{args.arch} on {args.dataset}, framing {args.framing or params.train.framing}"
    print(f"{title}:\n{describe(findings)}")
    return 1 if any(f.severity == "error" for f in findings) else 0


def main(argv: list[str] | None = None) -> int:
    try:
        code = run(sys.argv[1:] if argv is None else argv)
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

    traceback.print_exception(exc)
    print(f"sinernn: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
    return EXIT_UNEXPECTED


if __name__ == "__main__":
    sys.exit(main())
