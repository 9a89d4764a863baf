"""``ponder swebench``: run the agent over SWE-bench instances; ``ponder swebench eval``: grade.

The model is named as anywhere else (``--model`` or the config). ``scripted:DIR`` replays a
recorded trajectory per instance, ``DIR/<instance_id>.jsonl`` (with ``--heavy N``:
``<instance_id>.<n>.jsonl`` for each trajectory and ``.0`` for the aggregation step). A local
GGUF is loaded once and serves one instance at a time; an OpenAI-compatible server (vLLM,
SGLang) serves every worker. ``DOCKER_HOST`` picks the engine the sandboxes run on.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from ponder.app.config import Config, load_config
from ponder.app.exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError
from ponder.app.help_examples import examples
from ponder.app.models import open_model
from ponder.app.sandboxes import prepared_engine, sandbox_image
from ponder.app.session import agent_settings
from ponder.model.backend import ChatBackend
from ponder.model.scripted import ScriptedBackend
from ponder.runtime.swe import reference
from ponder.runtime.swe.datasets import load_source
from ponder.runtime.swe.grader import LOG_ROOT, Graded, check_run_id, grade_all
from ponder.runtime.swe.instances import (
    Instance,
    InstanceError,
    load_predictions,
    select,
)
from ponder.runtime.swe.runner import (
    BackendFor,
    BatchRunner,
    BatchSettings,
    InstanceResult,
    worker_limit,
)
from ponder.sandbox.docker_setup import Limits
from ponder.sandbox.safe_text import safe_text

MARKS = {
    "submitted": "✓",
    "finished": "✓",
    "empty": "∅",
    "timed_out": "⏱",
    "stopped": "■",
    "error": "✗",
}


def parsers() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    run = argparse.ArgumentParser(
        prog="ponder swebench",
        description="Run ponder on SWE-bench instances, one sandbox each; write predictions.",
        **examples("swebench"),
    )
    choose(run)
    run.add_argument("--workers", type=int, default=1, help="sandboxes at once (default 1)")
    run.add_argument(
        "--out", type=Path, default=Path("preds.jsonl"), help="predictions file (preds.jsonl)"
    )
    run.add_argument("--logs", type=Path, help="per-instance logs (default: OUT's name + .logs)")
    run.add_argument("--model", help="llamacpp:PATH.gguf, openai:URL#MODEL or scripted:DIR")
    run.add_argument("--heavy", type=int, metavar="N", help="N trajectories per instance")
    run.add_argument("--timeout", type=float, default=1800, help="seconds per instance")
    run.add_argument("--max-steps", type=int, help="steps per instance (default 300)")
    run.add_argument("--redo", action="store_true", help="run instances that have a prediction")
    run.add_argument("--image", help="image for instances without their own")
    run.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="spread the instances over a Ray cluster (auto, or HOST:PORT); the nodes that run "
        "sandboxes offer the docker resource: ray start --resources '{\"docker\": 4}'",
    )
    grade = argparse.ArgumentParser(
        prog="ponder swebench eval",
        **examples("swebench eval"),
        description="Grade predictions offline with SWE-bench's rules; per-instance report.json "
        "and a summary in SWE-bench's format.",
    )
    choose(grade)
    grade.add_argument("--predictions", type=Path, required=True, help="predictions .jsonl")
    grade.add_argument("--run-id", help="names the run's logs (default: PREDICTIONS' name)")
    grade.add_argument("--workers", type=int, default=1, help="sandboxes at once (default 1)")
    grade.add_argument("--timeout", type=float, default=1800, help="seconds for the tests")
    grade.add_argument("--report-dir", type=Path, default=Path(), help="for the summary")
    grade.add_argument("--image", help="image for instances without their own")
    return run, grade


def choose(parser: argparse.ArgumentParser) -> None:
    """The arguments that say which instances, as mini-swe-agent names them."""
    parser.add_argument(
        "--instances",
        required=True,
        help="a .jsonl, .json or .parquet file, or a dataset in the Hugging Face cache "
        "(e.g. SWE-bench/SWE-bench_Verified)",
    )
    parser.add_argument("--split", default="test", help="the dataset's split (default test)")
    parser.add_argument("--ids", nargs="+", metavar="ID", help="only these instances")
    parser.add_argument("--filter", metavar="REGEX", help="only ids matching it (from the start)")
    parser.add_argument("--slice", metavar="START:END", help="then only these (e.g. 0:50)")
    parser.add_argument("--shard", metavar="I/N", help="then every Nth from the Ith (CI jobs)")


def prediction_model_name(spec: str) -> str:
    """The predictions' ``model_name_or_path``: ponder and the model's own name, as in
    ``ponder__kimi-k2-thinking``. It names the harness's log folders, so it holds no path of
    this machine and no ``:``."""
    scheme, _, target = spec.partition(":")
    name = target.partition("#")[2] if scheme == "openai" else Path(target).name
    name = re.sub(r"(-\d{5}-of-\d{5})?\.gguf$", "", name)  # a split GGUF's first file
    return "ponder__" + (re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or scheme)


def run(argv: list[str]) -> int:
    run_parser, grade_parser = parsers()
    if argv[:1] == ["eval"]:
        return _grade(grade_parser.parse_args(argv[1:]))
    return _run(run_parser.parse_args(argv))


def _instances(args: argparse.Namespace) -> list[Instance]:
    try:
        return select(
            load_source(args.instances, args.split, args.ids),
            pattern=args.filter,
            span=args.slice,
            shard=args.shard,
        )
    except InstanceError as error:
        raise UsageError(str(error)) from None


def backend_factory(config: Config, heavy: bool) -> tuple[BackendFor, bool]:
    """How each instance gets its model, and whether instances can run at once."""
    spec = config.session.model
    if not spec:
        raise UsageError("no model: give --model (scripted:DIR for recorded trajectories)")
    if spec.startswith("scripted:") and Path(spec.split(":", 1)[1]).is_dir():
        directory = Path(spec.split(":", 1)[1])

        @contextmanager
        def scripted(instance: Instance, number: int) -> Iterator[ChatBackend]:
            name = f"{instance.instance_id}.{number}" if heavy else instance.instance_id
            path = directory / f"{name}.jsonl"
            if not path.exists():
                raise UsageError(f"no recorded trajectory {path}")
            yield ScriptedBackend.from_file(path)

        return scripted, True
    if spec.startswith("llamacpp:"):
        shared = open_model(config, spec)

        def local(instance: Instance, number: int) -> AbstractContextManager[ChatBackend]:
            return nullcontext(shared)

        return local, False

    @contextmanager
    def remote(instance: Instance, number: int) -> Iterator[ChatBackend]:
        backend = open_model(config, spec)
        try:
            yield backend
        finally:
            backend.close()

    return remote, True


def _run(args: argparse.Namespace) -> int:
    config = load_config({"model": args.model, "image": args.image, "max_steps": args.max_steps})
    instances = _instances(args)
    if args.ray and (config.session.model or "").startswith("llamacpp:"):
        raise UsageError(
            "a local GGUF cannot serve a cluster: serve it (ponder serve) and give --model "
            "openai:URL#MODEL"
        )
    backend_for, parallel = backend_factory(config, heavy=bool(args.heavy))
    limits = Limits()
    workers = worker_limit(args.workers, limits) if parallel else 1
    console = Console(stderr=True, highlight=False)
    if workers < args.workers and not args.ray:
        why = "a local model serves one at a time" if not parallel else "CPUs and memory"
        console.print(f"running {workers} at a time, not {args.workers} ({why})")
    settings = BatchSettings(
        predictions=args.out,
        logs=args.logs or args.out.with_name(args.out.stem + ".logs"),
        model_name=prediction_model_name(config.session.model or ""),
        default_image=sandbox_image(config),
        workers=workers,
        timeout_s=args.timeout,
        redo=args.redo,
        heavy=args.heavy,
        limits=limits,
        agent=agent_settings(config),
    )
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def started(instance: Instance) -> None:
        console.print(f"… {instance.instance_id}")

    def finished(result: InstanceResult) -> None:
        said = {result.status, "submitted", "time_limit"}  # a reason the status already gives
        why = "" if result.reason in said else f"{safe_text(result.reason)}, "
        with lock:
            counts[result.status] = counts.get(result.status, 0) + 1
            done = sum(counts.values())
            tally = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in counts.items())
        console.print(
            Text(
                f"{MARKS[result.status]} {result.instance_id}: {result.status.replace('_', ' ')} "
                f"({why}{result.steps} steps, {result.seconds:.0f} s) · {done} done: {tally}"
            )
        )

    if args.ray:
        from ponder.runtime.swe.ray_batch import RaySpread

        runner = BatchRunner(instances, settings, backend_for, client=None, on_result=finished)
        spread = RaySpread(
            runner,
            args.ray,
            functools.partial(prepared_engine, sandbox_image(config)),
            console.print,
        )
        summary, stopped = _until_stopped(lambda: runner.run(spread), spread.stop)
    else:
        client = prepared_engine(sandbox_image(config))
        runner = BatchRunner(
            instances, settings, backend_for, client=client, on_start=started, on_result=finished
        )
        summary, stopped = _until_stopped(runner.run, runner.stop)
    assert summary is not None
    console.print(
        f"{len(summary.results)} run, {len(summary.skipped)} already done; predictions in "
        f"{settings.predictions}, summary in {settings.predictions.with_suffix('.summary.json')}"
    )
    if stopped:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if summary.ids("error") else EXIT_OK


def _until_stopped(work: Callable[[], Any], stop: Callable[[], None]) -> tuple[Any, bool]:
    """Run ``work`` in a thread; Ctrl-C or SIGTERM calls ``stop`` and waits for it to wind up,
    so the results so far are written and every sandbox is removed."""
    outcome: list[Any] = []
    failure: list[BaseException] = []
    # An Event, not Thread.join: a join cut short by the signal's exception can leave the thread
    # marked as finished while it still runs (CPython 3.11).
    done = threading.Event()

    def target() -> None:
        try:
            outcome.append(work())
        except BaseException as error:  # handed to the main thread
            failure.append(error)
        finally:
            done.set()

    threading.Thread(target=target, name="swebench").start()
    stopped = False
    while not done.is_set():
        try:
            done.wait(0.2)
        except (KeyboardInterrupt, SystemExit):
            stopped = True
            print("ponder: stopping; finishing what is running…", file=sys.stderr, flush=True)
            stop()
    if failure:
        raise failure[0]
    return (outcome[0] if outcome else None), stopped


def _grade(args: argparse.Namespace) -> int:
    config = load_config({"image": args.image})
    instances = _instances(args)
    if not args.predictions.exists():
        raise UsageError(f"no predictions file {args.predictions}")
    try:
        run_id = check_run_id(args.run_id or args.predictions.stem)
        chosen = {i.instance_id for i in instances}
        predictions = {
            iid: p for iid, p in load_predictions(args.predictions).items() if iid in chosen
        }
        if not predictions:
            raise InstanceError(f"{args.predictions} has no prediction for these instances")
        reference.harness()
        for instance in instances:
            reference.check_parser(instance)
    except InstanceError as error:
        raise UsageError(str(error)) from None
    console = Console(stderr=True, highlight=False)

    def reported(graded: Graded) -> None:
        verdict = graded.verdict if not graded.detail else f"error: {graded.detail}"
        if graded.verdict == "empty":
            verdict = "empty patch, not graded"
        mark = {"resolved": "✓", "unresolved": "✗", "error": "!", "empty": "∅"}[graded.verdict]
        again = " (graded before)" if graded.again else ""
        console.print(Text(f"{mark} {graded.instance_id}: {safe_text(verdict)}{again}"))

    client = prepared_engine(sandbox_image(config))
    path, summary = grade_all(
        instances,
        predictions,
        client=client,
        default_image=sandbox_image(config),
        timeout_s=args.timeout,
        run_id=run_id,
        report_dir=args.report_dir,
        workers=max(1, args.workers),
        on_graded=reported,
    )
    console.print(
        f"resolved {summary['resolved_instances']} of {summary['submitted_instances']} "
        f"submitted ({summary['error_instances']} errors); logs in "
        f"{LOG_ROOT / run_id}, summary in {path}"
    )
    return EXIT_OK
