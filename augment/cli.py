"""The `augment` command. Subcommands import what they need when they run, so --help is instant."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

EPILOG = """examples:
  augment validate pipelines/demo.yaml
  augment run pipelines/demo.yaml --set source.root=data/sim --set sink.root=out/demo
  augment run pipelines/demo.yaml --address auto        # join a running Ray cluster
  augment inspect out/demo
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="augment",
        description="Turn real robot episodes (LeRobot v3.0 datasets) into new, synthetic episodes, "
        "as described by a YAML pipeline spec.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a pipeline spec", description="Run a pipeline spec. Without --address, "
                         "Ray starts in this process; rerunning into the same sink.root finishes only what is missing.")
    run.add_argument("spec", type=Path, help="pipeline YAML")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a spec field, e.g. --set sink.root=out/x --set stages.0.variants=3")
    run.add_argument("--address", default=None, help="Ray cluster address ('auto', 'ray://host:10001'); "
                     "default: start Ray in-process")
    run.add_argument("--local", action="store_true", help="run in this process without Ray (debugging, tests)")
    run.add_argument("--quiet", action="store_true", help="no progress bars (nor Ray Data's progress lines)")

    val = sub.add_parser("validate", help="check a spec without running it")
    val.add_argument("spec", type=Path)
    val.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    val.add_argument("--deep", action="store_true", help="also decode every selected episode and check it "
                     "against meta/info.json (rows, shapes, frame counts, fps, timestamps), as the run would")

    ins = sub.add_parser("inspect", help="summarise a LeRobot dataset: episodes, frames, fps, features, cameras, tasks")
    ins.add_argument("root", help="dataset root (the folder holding meta/info.json), or a URI (s3://bucket/prefix)")
    ins.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ins.add_argument("--verify", action="store_true", help="decode every episode and check it against "
                     "meta/info.json (rows, shapes, frame counts, fps, timestamps); exit 2 on a problem")

    # Subcommands owned by a stage package (their code lives there, not in the spine).
    from labelers.cli import add_parser as add_train_idm

    add_train_idm(sub)
    from generators.cli import add_parser as add_finetune  # `augment finetune`: generators/cli.py

    add_finetune(sub)
    from verifiers.cli import add_parser as add_check  # `augment check`: verifiers/cli.py
    from verifiers.cli import add_train_parser as add_train_verifier

    add_check(sub)
    add_train_verifier(sub)
    return p


def main(argv: list[str] | None = None, exit_fast: bool = False) -> int:
    """exit_fast: the process ends when this returns (entry), so an embedded Ray is left to entry to stop."""
    args = _parser().parse_args(argv)
    args.exit_fast = exit_fast
    try:
        if args.command == "train-idm":
            from labelers.cli import run as cmd_train_idm

            return cmd_train_idm(args)
        if args.command == "finetune":
            from generators.cli import run as cmd_finetune

            return cmd_finetune(args)
        if args.command == "check":
            from verifiers.cli import run as cmd_check

            return cmd_check(args)
        if args.command == "train-verifier":
            from verifiers.cli import run_train as cmd_train_verifier

            return cmd_train_verifier(args)
        return {"run": cmd_run, "validate": cmd_validate, "inspect": cmd_inspect}[args.command](args)
    except KeyboardInterrupt:
        print("interrupted; finished parts are kept, rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as e:
        # Imported here, not before the command: it brings PyAV, pyarrow and pandas, and `run` starts Ray 0.3 s sooner.
        from augment.pipeline import USER_ERRORS

        if isinstance(e, USER_ERRORS):
            print(f"error: {e}", file=sys.stderr)
            return 2
        if isinstance(e, BrokenPipeError):  # `augment inspect ROOT | head`: the reader left, which is not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            return 141
        raise


def cmd_validate(args) -> int:
    from augment.pipeline import resolve_stages
    from augment.source import LeRobotSource
    from augment.spec import load_spec

    spec = load_spec(args.spec, args.overrides)
    source = LeRobotSource(spec.source.root, spec.source.cameras)
    episodes = source.select(spec.source.episodes)
    spec.stages, _, notes = resolve_stages(spec.stages, source, episodes)
    stages = ", ".join(s.label for s in spec.stages) or "(none: copy)"
    print(f"{args.spec}: ok — {len(episodes)} episodes from {spec.source.root}, stages: {stages}, "
          f"output: {spec.sink.root}")
    for label, note in notes.items():
        print(f"  {label}: {json.dumps(note)}")
    if args.deep:
        return _report_verified(source.verify(episodes), f"{len(episodes)} episodes of {spec.source.root}")
    return 0


def _report_verified(problems: list[str], what: str) -> int:
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return 2
    print(f"verified: {what} decode and match meta/info.json")
    return 0


def cmd_run(args) -> int:
    from augment.spec import load_spec

    spec = load_spec(args.spec, args.overrides)
    if args.local:
        from augment.local import run_local

        report = run_local(spec, progress=not args.quiet)
    else:
        from augment.runner import run_ray, stop_ray

        report = run_ray(spec, address=args.address, progress=not args.quiet)
        if not args.exit_fast:
            stop_ray()
    from augment.report import print_report  # here, not above: Ray starts 0.2 s sooner without its imports first

    print_report(report)
    return 0


def cmd_inspect(args) -> int:
    from augment.report import dataset_summary, print_summary

    summary = dataset_summary(args.root)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
    if args.verify:
        from augment.source import LeRobotSource

        source = LeRobotSource(args.root)
        return _report_verified(source.verify(source.select(None)), f"all {len(source.episodes)} episodes")
    return 0


def entry() -> None:
    """The `augment` console script: main(), then, after a run on an embedded Ray, an exit that does
    not wait. The dataset is committed and the report printed by then; ray.shutdown's orderly stop
    (raylet, GCS, a grace period each) and the interpreter's teardown (Ray's core worker, PyAV, pyarrow
    and a few thousand modules) took 0.6-1.5 s of a 5 s copy. In-process callers of main() keep both."""
    code = main(exit_fast=True)
    runner = sys.modules.get("augment.runner")
    if runner is not None and runner.kill_ray():
        import logging

        logging.shutdown()
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BrokenPipeError:
            pass
        os._exit(code)  # not sys.exit: atexit's ray.shutdown would wait on the processes just killed
    sys.exit(code)


if __name__ == "__main__":
    entry()
