"""`specstress`: the command line. Thin: parse, load config, call the driver or a tool.

Each command imports what it runs only once its config has loaded, so a config error comes back
before any table, numeric or Ray library is imported.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from actors.errors import BudgetExceeded, Interrupted, SpecstressError

EXIT_ERROR = 1
EXIT_BUDGET = 3
"""`run` stopped at budget_usd; everything paid is stored, and the same command resumes."""
EXIT_PARTIAL = 4
"""`run` went to the end, but stages found nothing valid upstream and were skipped (printed, with
why, and in `specstress status`): the rows upstream need attention, not the config."""
EXIT_INTERRUPTED = 130
"""`run` was interrupted (SIGINT; 128 + signal number, so 143 for SIGTERM): in-flight calls were
drained, results flushed, the manifest marked resumable; the same command resumes."""


def _cmd_run(args: argparse.Namespace) -> int:
    from jobs.config import load_config

    conf = load_config(args.config, args.overrides)
    from jobs.driver import run_pipeline, skipped_stages

    summaries = run_pipeline(conf)
    print(f"run directory: {conf.run_dir}")
    for name, summary in summaries.items():
        print(f"stage {name}: {json.dumps(summary, sort_keys=True)}")
    from jobs.stages.answer_scope import summary_lines as selection_lines
    from jobs.stages.committee import summary_lines as committee_lines

    for line in [*selection_lines(summaries), *committee_lines(summaries)]:
        print(line)
    if "disagreement" in summaries:
        from jobs.stages.disagreement import summary_lines

        print("\n".join(summary_lines(summaries["disagreement"])))
    from jobs.stages.judging import summary_lines as judge_lines

    for line in judge_lines(summaries):
        print(line)
    skipped = skipped_stages(conf.run_dir)
    for name, why in skipped.items():
        print(f"specstress: stage {name} skipped: {why}", file=sys.stderr)
    return EXIT_PARTIAL if skipped else 0


def _cmd_emulate(args: argparse.Namespace) -> int:
    from jobs.config import load_config

    conf = load_config(args.config, args.overrides)
    from jobs.engine.emulation import serve_forever

    serve_forever(conf, host=args.host, port=args.port)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from jobs.outputs.status import run_status

    status = run_status(args.run)
    if args.json:
        print(json.dumps(status, indent=1, sort_keys=True))
    else:
        from jobs.outputs.status import format_status

        print(format_status(status))
    return 0


def _cmd_estimate(args: argparse.Namespace) -> int:
    from jobs.config import load_config

    conf = load_config(args.config, args.overrides)
    from jobs.estimate.estimate import estimate, format_estimate

    est = estimate(conf)
    print(json.dumps(est.as_dict(), indent=1) if args.json else format_estimate(est))
    return 0


def _floats(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _cmd_committee(args: argparse.Namespace) -> int:
    from jobs.outputs.committee import committee_report, format_committee

    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    report = committee_report(args.run, models, k=args.k, targets=args.targets)
    print(json.dumps(report.as_dict(), indent=1) if args.json else format_committee(report))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from jobs.release.export import export_release

    result = export_release(args.run, args.out, chunk_size=args.chunk_size, rows_per_file=args.rows_per_file)
    print(f"wrote {result.out_dir}")
    for config, splits in result.rows.items():
        print(f"  {config}: " + ", ".join(f"{split} {n}" for split, n in splits.items()))
    for note in result.notes:
        print(f"  note: {note}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from jobs.release.importer import import_release

    result = import_release(args.source, args.run)
    print(f"wrote {result.run_dir}")
    print("  " + ", ".join(f"{table} {n}" for table, n in result.rows.items()))
    for note in result.notes:
        print(f"  note: {note}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from jobs.outputs.report.build import ReportOptions, build_report

    path = build_report(args.run, ReportOptions(max_scenarios=args.max_scenarios, max_chars=args.max_chars))
    print(f"wrote {path}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "analysis":
        from jobs.bench.analysis import run_analysis_bench

        result = run_analysis_bench(quick=args.quick)
    elif args.what == "gpu":
        from jobs.bench.gpu import gpu_bench

        result = gpu_bench(quick=args.quick)
    elif args.what == "estimate":
        from jobs.bench.estimate import run_estimate_bench

        result = run_estimate_bench(quick=args.quick)
    elif args.what == "rehearsal":
        from jobs.bench.rehearsal import format_rehearsal, run_rehearsal

        taxonomy = (args.tree, args.frequencies) if args.tree else None
        sizes = [int(n) for n in args.pairs.split(",")] if args.pairs else None
        result = run_rehearsal(quick=args.quick, sizes=sizes, taxonomy=taxonomy)
        if not args.json:
            print(format_rehearsal(result))
            return 0
    elif args.what == "crash":
        from jobs.bench.crash import format_crash, run_crash_bench

        result = run_crash_bench(quick=args.quick, address=args.address)
        if not args.json:
            print(format_crash(result))
            return 0
    else:
        from jobs.bench.fanout import run_bench

        result = run_bench(args.what, quick=args.quick)
    print(json.dumps(result, sort_keys=True) if args.json else json.dumps(result, indent=1, sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="specstress", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a pipeline; the same command again resumes it")
    r.add_argument("config", help="YAML config, e.g. conf/demo.yaml")
    r.add_argument("overrides", nargs="*", help="key=value overrides, e.g. run_dir=runs/x budget_usd=50")
    r.set_defaults(fn=_cmd_run)

    e = sub.add_parser("emulate", help="serve the provider emulator (a stand-in for real providers)")
    e.add_argument("--port", type=int, default=8765)
    e.add_argument("--host", default="127.0.0.1")
    e.add_argument("--config", default=None, help="config whose `emulator:` section to use")
    e.add_argument("overrides", nargs="*", help="key=value overrides, e.g. emulator.seed=3")
    e.set_defaults(fn=_cmd_emulate)

    s = sub.add_parser("status", help="stage states, calls, 429s, failures, cost of a run")
    s.add_argument("run", help="run directory")
    s.add_argument("--json", action="store_true", help="one JSON object")
    s.set_defaults(fn=_cmd_status)

    es = sub.add_parser(
        "estimate", help="calls, tokens, dollars and time per stage and model, before any spend"
    )
    es.add_argument("config")
    es.add_argument("overrides", nargs="*", help="key=value overrides, as for run")
    es.add_argument("--json", action="store_true", help="one JSON object")
    es.set_defaults(fn=_cmd_estimate)

    c = sub.add_parser(
        "committee",
        help="on a finished run: the recall of high-D scenarios a committee would find, against its cost share",
    )
    c.add_argument(
        "run", help="run directory with scores and responses (a full sweep, or an imported release)"
    )
    c.add_argument("--models", help="the committee, comma-separated model keys (default: a greedy search)")
    c.add_argument("--k", type=int, default=3, help="size of the greedily searched committee (default 3)")
    c.add_argument(
        "--targets",
        type=_floats,
        default=[0.8, 0.9, 0.95],
        help="target recalls, comma-separated (default 0.8,0.9,0.95)",
    )
    c.add_argument("--json", action="store_true", help="one JSON object")
    c.set_defaults(fn=_cmd_committee)

    x = sub.add_parser("export", help="export a run as a dataset in the shape of the paper's release")
    x.add_argument("run", help="run directory")
    x.add_argument(
        "--format", choices=["hf"], required=True, help="hf: the configs, splits and columns of the release"
    )
    x.add_argument("--out", required=True, help="output folder (an earlier export there is replaced)")
    x.add_argument(
        "--chunk-size",
        type=int,
        help="value pairs per chunk_index (default: an imported dataset's, else 25,000)",
    )
    x.add_argument("--rows-per-file", type=int, default=10_000, help="rows per Parquet shard")
    x.set_defaults(fn=_cmd_export)

    im = sub.add_parser(
        "import", help="read the paper's released dataset (or an export) into a new run directory"
    )
    im.add_argument(
        "source",
        help="local folder in the release's layout (data/, complete/, judge_evaluations/), or a Hub "
        "dataset id such as jifanz/stress_testing_model_spec (needs the `hub` extra and the network)",
    )
    im.add_argument("--run", required=True, help="the run directory to create (must not exist)")
    im.set_defaults(fn=_cmd_import)

    rp = sub.add_parser("report", help="write <run>/report/index.html: plots, run facts, scenario explorer")
    rp.add_argument("run", help="run directory (finished, stopped or still running)")
    rp.add_argument("--max-scenarios", type=int, default=100, help="selected scenarios in the explorer")
    rp.add_argument("--max-chars", type=int, default=4000, help="characters kept of each response")
    rp.set_defaults(fn=_cmd_report)

    b = sub.add_parser("bench", help="benchmarks against the emulator; prints JSON")
    b.add_argument("what", choices=["fanout", "analysis", "estimate", "gpu", "crash", "rehearsal"])
    b.add_argument("--json", action="store_true", help="one line of JSON")
    b.add_argument("--quick", action="store_true", help="short windows, for a smoke test")
    b.add_argument("--address", help="crash: run the drivers on this Ray cluster instead of a local Ray")
    b.add_argument("--pairs", help="rehearsal: pair counts, comma-separated (default 1500,15000)")
    b.add_argument("--tree", help="rehearsal: the taxonomy's values_tree.csv (default: the demo taxonomy)")
    b.add_argument("--frequencies", help="rehearsal: the taxonomy's values_frequencies.csv")
    b.set_defaults(fn=_cmd_bench)
    return p


OWN_LOGGER = "specstress"
QUIETED = ("matplotlib",)
"""Libraries that warn about their own housekeeping (matplotlib: its font cache); errors only,
unless -v."""


def configure_logging(verbose: bool) -> None:
    """specstress's own loggers at INFO (DEBUG with -v); other libraries' (faiss's loader, Ray,
    matplotlib) only from WARNING, or ERROR for `QUIETED`, so a command prints its own lines;
    -v shows everything."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger(OWN_LOGGER).setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in QUIETED:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        return int(args.fn(args))
    except Interrupted as exc:
        print(
            f"specstress: {exc}. Results so far are stored; run the same command to resume.", file=sys.stderr
        )
        return 128 + exc.signum
    except BudgetExceeded as exc:
        print(f"specstress: budget: {exc}", file=sys.stderr)
        return EXIT_BUDGET
    except SpecstressError as exc:
        print(f"specstress: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(
            "specstress: interrupted; results so far are stored. Run the same command to resume.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
