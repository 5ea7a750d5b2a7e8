"""The ``midtrain`` command line: locally or as a client of a server (``--server URL``).

Every command calls the function its REST endpoint calls (``api.service``, ``api.sources``,
``api.state.Store``, ``api.jobs.Jobs``) and exits non-zero with a one-line reason: 2 for bad
input (an HTTP 4xx from a server), 1 for a job that failed or a server or state file that
cannot be used.

With ``--server URL`` (or ``$MIDTRAIN_SERVER``) the commands that have an endpoint act as a
client of that server (``api.client``) instead: curate, mix plan, mix build, train and catalog
launch or read jobs there, and the sources, runs and mixtures groups read and change its state.
Without it, those groups open the state file (``$MIDTRAIN_STATE``) directly, which a running
server holds locked."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from corpus.files import OutputWriteError
from corpus.manifest import InvariantError
from corpus.specfile import SpecError

if TYPE_CHECKING:
    from api.client import Client
    from api.jobs import Jobs
    from api.paths import DataRoots
    from api.state import Store
    from filters.classifier import TrainingSettings

SERVER_ENV = "MIDTRAIN_SERVER"
TOKEN_ENV = "MIDTRAIN_API_TOKEN"  # api.deps.TOKEN_ENV, not imported: it pulls in FastAPI
JOB_STATUSES = ("running", "succeeded", "failed", "cancelled")
JOB_KINDS = ("curation", "mix-build", "training")


class JobFailed(Exception):
    """A job followed to its end that did not succeed; exit status 1."""


class Unavailable(Exception):
    """A state file another process (a running server) holds; exit status 1."""


# ---------------------------------------------------------------------------------------------
# --server: the client, following a job, and local state


def client_of(args: argparse.Namespace) -> Client:
    from api.client import Client

    return Client(args.server, token=args.token or None)


def print_record(record: Any) -> None:
    print(json.dumps(record, indent=2))


def launched(client: Client, record: dict, wait: bool) -> dict | None:
    """Print a launched job's id; with ``wait``, stream its log lines until it ends and
    return its record, raising ``JobFailed`` unless it succeeded."""
    print(record["id"], flush=True)
    if not wait:
        return None
    return finished(client.wait(record["id"], record["kind"], on_line=lambda line: print(line, flush=True)))


def finished(record: dict) -> dict:
    """``record`` of a job that is over; ``JobFailed`` naming its error unless it succeeded."""
    if record["status"] != "succeeded":
        raise JobFailed(f"job {record['id']} {record['status']}: {record.get('error') or 'no error recorded'}")
    return record


def read_spec(path: Path) -> dict:
    """A YAML or JSON spec file as data, for a server to validate: its relative paths are the
    server's, under its data roots."""
    from corpus.specfile import read_spec_data

    data = read_spec_data(path)
    if not isinstance(data, dict):
        raise SpecError(f"{path}: want a mapping at the top level, not {type(data).__name__}")
    return data


def local_only(args: argparse.Namespace) -> None:
    if args.server:
        raise ValueError(f"`midtrain {args.command}` runs locally only; drop --server (or unset ${SERVER_ENV})")


@contextmanager
def opened_state() -> Iterator[Store]:
    """The state file (``$MIDTRAIN_STATE``), as a server opens it; ``Unavailable`` when
    another process (a running server) holds it."""
    import duckdb

    from api.state import Store, state_path

    try:
        store = Store()
    except duckdb.IOException as error:
        raise Unavailable(f"state file {state_path()} cannot be opened ({str(error).splitlines()[0]}); "
                          f"while a server holds it, use --server URL") from None
    try:
        yield store
    finally:
        store.close()


def local_roots() -> DataRoots:
    """The data roots a server started here would have (``$MIDTRAIN_DATA_ROOTS``, else the
    working directory): local commands confine paths as its endpoints do."""
    from api.paths import DataRoots

    return DataRoots.from_env()


def local_jobs(store: Store) -> Jobs:
    """The jobs of the state file, their files where a server started with the same
    environment keeps them (``$MIDTRAIN_RUNS``, else ``runs`` in the first data root)."""
    from api.jobs import Jobs, default_runs_root

    return Jobs(store, default_runs_root(local_roots().roots[0]))


def _cmd_curate(args: argparse.Namespace) -> None:
    from api import service

    if args.server:
        if args.resume:
            raise ValueError("--resume is local only: a server resumes a run whose worker was lost by itself")
        client = client_of(args)
        record = launched(client, client.launch_curation(read_spec(args.config)), args.wait)
        if record is not None:
            from corpus.manifest import Manifest

            manifest = Manifest.model_validate_json(client.artefact(record["id"], "manifest.json", "curation"))
            print(service.format_table(service.manifest_summary(manifest)))
        return
    manifest = service.curate(args.config, resume=args.resume)
    print(service.format_table(service.manifest_summary(manifest)))


def _cmd_catalog(args: argparse.Namespace) -> None:
    from api import service

    if args.server:  # the argument is a curation run's id; GET /corpora/{id} calls service.catalog
        print(service.format_table(client_of(args).corpus(args.out)["domains"]))
        return
    print(service.format_table(service.catalog(args.out)))


def _cmd_verify(args: argparse.Namespace) -> None:
    from corpus.verify import verify_output

    local_only(args)
    result = verify_output(args.out)
    for finding in result.findings:
        print(f"verify: {finding}")
    if not result.ok:
        raise VerifyError(f"{args.out}: {len(result.findings)} problems")
    print(f"verify: {args.out}: ok, {result.shards} shards, {result.rows} rows, sha256 and counts as the manifest says")


class VerifyError(ValueError):
    """A curated output that does not match its manifest (exit 1: the data, not the input, is bad)."""


def _cmd_report(args: argparse.Namespace) -> None:
    from api import service

    local_only(args)
    if not (args.out / "manifest.json").is_file() and ((args.out / "train").is_dir() or (args.out / "metrics.jsonl").is_file()):
        from trainer.report import write_run_report  # a run folder, not a curated output

        print(f"report: {write_run_report(args.out, args.output)}")
        return
    from pipelines.report import funnel_rows, load_stats

    directory = service.report(args.out)
    print(service.format_table(funnel_rows(load_stats(directory))))
    print(f"report: {directory}")


def _cmd_compare(args: argparse.Namespace) -> None:
    local_only(args)
    from trainer.compare import write_comparison

    print(f"compare: {write_comparison(args.runs, args.output)}")


def _cmd_tokenizer_train(args: argparse.Namespace) -> None:
    from api import service

    local_only(args)

    service.train_tokenizer(args.corpus, args.output, vocab_size=args.vocab_size)


def add_training_options(sub: argparse.ArgumentParser, held_out: str) -> None:
    """The fastText options both classifier commands take; ``held_out`` names what is split."""
    sub.add_argument("--holdout", type=float, default=0.1, help=f"fraction of each {held_out} held out for the metrics")
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--epochs", type=int, default=5)
    sub.add_argument("--lr", type=float, default=0.1)
    sub.add_argument("--dim", type=int, default=64)
    sub.add_argument("--bucket", type=int, default=500_000, help="hash buckets for word bigrams")


def training_settings(args: argparse.Namespace) -> TrainingSettings:
    from filters.classifier import TrainingSettings

    return TrainingSettings(epochs=args.epochs, lr=args.lr, dim=args.dim, bucket=args.bucket,
                            holdout=args.holdout, seed=args.seed)


def _cmd_classifier_train(args: argparse.Namespace) -> None:
    from api import service

    local_only(args)

    report = service.train_classifier(args.positive, args.negative, args.output,
                                      text_field=args.text_field, settings=training_settings(args))
    print(classifier_summary(report))


def classifier_summary(report: dict) -> str:
    """The held-out precision/recall table and the counts behind it."""
    from api import service

    metrics, split, inputs = report["holdout_metrics"], report["split"], report["inputs"]
    lines = [
        f"held out at P(hq) >= {metrics['threshold']}: accuracy {metrics['accuracy']:.3f}",
        service.format_table(metrics["classes"]),
        f"train {split['train']['hq']} hq + {split['train']['lq']} lq, held out "
        f"{split['holdout']['hq']} hq + {split['holdout']['lq']} lq; bad records "
        f"{inputs['positive']['bad']} positive, {inputs['negative']['bad']} negative; "
        f"trained in {report['train_seconds']:.1f}s",
        f"model: {report['model']}  report: {report['report']}",
    ]
    return "\n".join(lines)


def domain_arguments(values: list[str], flag: str) -> list[tuple[str, str]]:
    """``DOMAIN=VALUE`` arguments as (domain, value) pairs; a ValueError naming the flag and
    the argument when one is malformed or names a domain outside ``corpus.schema.DOMAINS``."""
    from corpus.schema import DOMAINS

    pairs = []
    for value in values:
        domain, equals, rest = value.partition("=")
        if not equals or not domain or not rest:
            raise ValueError(f"{flag} {value!r}: want DOMAIN=VALUE, e.g. {flag} web=data/web/*.jsonl")
        if domain not in DOMAINS:
            raise ValueError(f"{flag} {value!r}: unknown domain {domain!r}; known: {', '.join(DOMAINS)}")
        pairs.append((domain, rest))
    return pairs


def _cmd_classifier_train_domain(args: argparse.Namespace) -> None:
    from api import service

    local_only(args)

    labelled: dict[str, list[str]] = {}
    for domain, pattern in domain_arguments(args.labelled, "--labelled"):
        labelled.setdefault(domain, []).append(pattern)
    text_fields: dict[str, str] = {}
    for domain, field in domain_arguments(args.domain_text_field, "--domain-text-field"):
        if domain in text_fields:
            raise ValueError(f"--domain-text-field: {domain!r} given twice")
        text_fields[domain] = field
    report = service.train_domain_classifier(labelled, args.output, text_field=args.text_field,
                                             text_fields=text_fields, settings=training_settings(args))
    print(domain_classifier_summary(report))


def confusion_rows(confusion: dict) -> list[dict]:
    """A confusion matrix ``{"labels", "matrix"}`` as table rows: one per true class, one
    column per predicted class."""
    return [
        {"true \\ predicted": label, **dict(zip(confusion["labels"], counts))}
        for label, counts in zip(confusion["labels"], confusion["matrix"])
    ]


def domain_classifier_summary(report: dict) -> str:
    """The held-out per-domain table, the confusion matrix and the counts behind them."""
    from api import service

    metrics, split, inputs = report["holdout_metrics"], report["split"], report["inputs"]
    bad = sum(counts["bad"] for counts in inputs["domains"].values())
    lines = [
        f"held out, top label: accuracy {metrics['accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f}",
        service.format_table(metrics["classes"]),
        "",
        service.format_table(confusion_rows(metrics["confusion"])),
        "",
        f"train {sum(split['train'].values())}, held out {sum(split['holdout'].values())} documents; "
        f"bad records {bad}; texts under two domains dropped {inputs['conflicting']}; "
        f"trained in {report['train_seconds']:.1f}s",
        f"model: {report['model']}  report: {report['report']}",
    ]
    return "\n".join(lines)


def _cmd_mix_plan(args: argparse.Namespace) -> None:
    from api import service
    from mixer.plan import MixturePlan, format_plan_table, write_plan

    if args.server:  # saved as the mixture's next version, then planned by the server
        client = client_of(args)
        saved = client.save_mixture(read_spec(args.mixture))
        plan = MixturePlan.model_validate(client.mixture_plan(saved["name"], saved["version"]))
        if args.output is not None:
            write_plan(plan, args.output)
    else:
        plan = service.mix_plan(args.mixture, output=args.output)
    print(format_plan_table(plan))


def _cmd_mix_build(args: argparse.Namespace) -> None:
    from api import service
    from mixer.build import BuildReport, format_report_table

    if args.server:  # saved as the mixture's next version, then built by a job on the server
        client = client_of(args)
        saved = client.save_mixture(read_spec(args.mixture))
        output = None if args.output is None else str(args.output)
        record = launched(client, client.launch_mix_build(saved["name"], saved["version"], output), args.wait)
        if record is not None:
            print(format_report_table(BuildReport.model_validate(client.mix_build_report(record["id"]))))
        return
    if args.output is None:
        raise ValueError("mix build: --output is required (only a server picks an output itself)")
    report = service.mix_build(args.mixture, args.output)
    print(format_report_table(report))


def _cmd_train(args: argparse.Namespace) -> None:
    from api import service

    if args.server:
        if args.resume or args.no_ray:
            raise ValueError("--resume and --no-ray are local only: a server trains on Ray and resumes "
                             "a run whose worker was lost by itself")
        client = client_of(args)
        record = launched(client, client.launch_training(read_spec(args.spec), args.mix_build), args.wait)
        if record is not None:
            summary = json.loads(client.artefact(record["id"], "summary.json", "training"))
            print(service.format_table(summary_rows(summary)))
        return
    spec: Any = args.spec
    if args.mix_build is not None:  # the build's record in the state file, as POST /training-runs reads it
        from api.launch import training_request
        from trainer.spec import TrainSpec

        with opened_state() as store:
            request, _ = training_request(local_jobs(store), local_roots(), read_spec(args.spec), args.mix_build)
        spec = TrainSpec.model_validate(request)
    summary = service.train(spec, resume=args.resume, on_ray=not args.no_ray)
    if "phases" in summary:  # under torchrun, only rank 0 has the run's summary to print
        print(service.format_table(summary_rows(summary)))


def summary_rows(summary: dict) -> list[dict]:
    return [
        {"phase": phase["name"], "seq_len": phase["seq_len"], "rope": phase["rope"],
         "steps": phase["steps"], "tokens": phase["tokens"],
         "first_loss": phase["first_loss"], "last_loss": phase["last_loss"]}
        for phase in summary["phases"]
    ]


def _cmd_schedule_plot(args: argparse.Namespace) -> None:
    local_only(args)
    from trainer.plots import PLOTS_DIR, plot_schedule, schedule_curve, schedule_lines
    from trainer.spec import load_train_spec
    from trainer.train import plan_phases

    spec = load_train_spec(args.spec)
    planned = plan_phases(spec, args.world_size)  # reads the built mixture: each phase's steps and tokens
    output = args.output if args.output is not None else Path(spec.output) / PLOTS_DIR / "schedule.png"
    print(plot_schedule(spec, output, planned))
    for line in schedule_lines(schedule_curve(spec, planned)):
        print(line)


# ---------------------------------------------------------------------------------------------
# recipe: the survey's recipes as presets (api.recipes)


def _cmd_recipe_list(args: argparse.Namespace) -> None:
    from api.recipes import recipe_rows
    from corpus.catalog import format_table

    local_only(args)
    print(format_table(recipe_rows()))


def _cmd_recipe_show(args: argparse.Namespace) -> None:
    from api.recipes import format_recipe, load_recipe

    local_only(args)
    print(format_recipe(load_recipe(args.name)))


def _cmd_recipe_run(args: argparse.Namespace) -> None:
    from api import service
    from api.recipes import Settings, run_recipe

    local_only(args)
    settings = Settings(scale=args.scale, seq_len=args.seq_len, model=args.model, batch_size=args.batch_size,
                        lr=args.lr, eval_every=args.eval_every or None)
    record = run_recipe(args.name, args.corpus, settings, output=args.output, run=args.run_name,
                        tokenizer=args.tokenizer, vocab_size=args.vocab_size, drop_missing=args.drop_missing,
                        on_ray=not args.no_ray)
    print(service.format_table(summary_rows(record["summary"])))
    print(record["run_dir"])


# ---------------------------------------------------------------------------------------------
# sources, mixtures, runs: the state's resources, locally or on a server


def source_rows(records: list[dict]) -> list[dict]:
    return [{"name": record["name"], "format": record["spec"]["format"], "kind": record["spec"]["kind"],
             "path": record["spec"]["path"], "created_at": record["created_at"]} for record in records]


def _cmd_sources_add(args: argparse.Namespace) -> None:
    entry: dict[str, Any] = {"name": args.name, "path": args.path, "format": args.format, "kind": args.kind,
                             "text_field": args.text_field, "id_field": args.id_field}
    if args.server:
        print_record(client_of(args).register_source(entry))
        return
    from pydantic import ValidationError

    from api.sources import register_source
    from corpus.specfile import validation_message
    from pipelines.config import SourceConfig

    try:
        spec = SourceConfig.model_validate(entry)
    except ValidationError as error:
        raise ValueError(validation_message(error)) from None
    with opened_state() as store:
        print_record(register_source(store, local_roots(), spec))


def _cmd_sources_list(args: argparse.Namespace) -> None:
    from api import service

    if args.server:
        page = client_of(args).list_sources(args.limit, args.offset)
        items, total = page["items"], page["total"]
    else:
        from api.sources import list_sources

        with opened_state() as store:
            items, total = list_sources(store, args.limit, args.offset)
    print(service.format_table(source_rows(items)))
    print(page_line(len(items), total, args.offset))


def _cmd_sources_show(args: argparse.Namespace) -> None:
    if args.server:
        print_record(client_of(args).get_source(args.name))
        return
    from api.sources import get_source

    with opened_state() as store:
        print_record(found(get_source(store, args.name), f"no source {args.name!r}"))


def _cmd_sources_rm(args: argparse.Namespace) -> None:
    if args.server:
        client_of(args).delete_source(args.name)
    else:
        from api.sources import delete_source

        with opened_state() as store:
            if not delete_source(store, args.name):
                raise NotFound(f"no source {args.name!r}")
    print(f"deleted source {args.name}")


def mixture_rows(records: list[dict]) -> list[dict]:
    return [{"name": record["name"], "version": record["version"], "phases": len(record["spec"]["phases"]),
             "tokens": sum(phase["tokens"] for phase in record["spec"]["phases"]),
             "sha256": record["sha256"][:12], "created_at": record["created_at"]} for record in records]


def _cmd_mixtures_save(args: argparse.Namespace) -> None:
    if args.server:
        print_record(client_of(args).save_mixture(read_spec(args.spec)))
        return
    from api.routes.mixtures import confined
    from mixer.spec import load_mixture

    spec = load_mixture(args.spec)
    confined(spec, local_roots())  # as POST /mixtures: paths under the data roots, stored as given
    with opened_state() as store:
        print_record(store.create_mixture(spec))


def _cmd_mixtures_list(args: argparse.Namespace) -> None:
    from api import service

    if args.server:
        page = client_of(args).list_mixtures(args.limit, args.offset)
        items, total = page["items"], page["total"]
    else:
        with opened_state() as store:
            items, total = store.list_mixtures(args.limit, args.offset)
    print(service.format_table(mixture_rows(items)))
    print(page_line(len(items), total, args.offset))


def _cmd_mixtures_show(args: argparse.Namespace) -> None:
    if args.server:
        print_record(client_of(args).get_mixture(args.name, args.version))
        return
    which = f" version {args.version}" if args.version is not None else ""
    with opened_state() as store:
        print_record(found(store.get_mixture(args.name, args.version), f"no mixture {args.name!r}{which}"))


def run_rows(records: list[dict]) -> list[dict]:
    return [{"id": record["id"], "kind": record["kind"], "status": record["status"],
             "created_at": record["created_at"], "finished_at": record["finished_at"] or "",
             "output": record["output"]} for record in records]


def _cmd_runs_list(args: argparse.Namespace) -> None:
    from api import service

    if args.server:
        items, total = client_of(args).list_all_runs(args.kind, args.status, args.limit, args.offset)
    else:
        with opened_state() as store:
            items, total = local_jobs(store).list(args.kind, args.status, args.limit, args.offset)
    print(service.format_table(run_rows(items)))
    print(page_line(len(items), total, args.offset))


def _cmd_runs_show(args: argparse.Namespace) -> None:
    if args.server:
        print_record(client_of(args).get_run(args.id))
        return
    with opened_state() as store:
        print_record(found(local_jobs(store).get(args.id), f"no job {args.id!r}"))


def _cmd_runs_logs(args: argparse.Namespace) -> None:
    def emit(line: str) -> None:
        print(line, flush=True)

    if args.server:
        client = client_of(args)
        if args.follow:
            finished(client.wait(args.id, on_line=emit))
            return
        for line in client.run_logs(args.id, 0, 10_000)["lines"]:
            emit(line)
        return
    with opened_state() as store:
        jobs = local_jobs(store)
        found(jobs.get(args.id), f"no job {args.id!r}")
        if args.follow:
            finished(follow_local(jobs, args.id, emit))
            return
        lines, _ = jobs.files(args.id).log_lines(0, 10**9)
        for line in lines:
            emit(line)


def follow_local(jobs: Jobs, job_id: str, emit: Callable[[str], None], poll: float = 0.5) -> dict:
    """Emit a job's log lines as its files grow, until it is over; returns its record with the
    status and error it ended with. Without a server nothing reconciles the record, so the
    job's own files say when it is over: its result, or a cancel request."""
    files, offset = jobs.files(job_id), 0
    while True:
        record = jobs.get(job_id)
        outcome = files.read_json(files.result)
        over = record["status"] != "running" or outcome is not None or files.cancel.exists()
        while True:  # after reading whether it is over, so the lines of a finished job are all there
            lines, next_offset = files.log_lines(offset, 10_000)
            for line in lines:
                emit(line)
            if next_offset == offset:
                break
            offset = next_offset
        if over:
            if record["status"] == "running":
                status = outcome["status"] if outcome is not None else "cancelled"
                error = outcome.get("error") if outcome is not None else "cancelled by request"
                record = {**record, "status": status, "error": error}
            return record
        time.sleep(poll)


def _cmd_runs_cancel(args: argparse.Namespace) -> None:
    if args.server:
        print_record(client_of(args).cancel_run(args.id))
        return
    from api.jobs import RUNNING

    with opened_state() as store:
        jobs = local_jobs(store)
        if found(jobs.get(args.id), f"no job {args.id!r}")["status"] == RUNNING:
            from pipelines.runtime import ensure_ray

            ensure_ray()  # its actor is ended on Ray (RAY_ADDRESS: the cluster the server uses)
        print_record(jobs.cancel(args.id))


class NotFound(LookupError):
    """What a 404 is locally; exit status 2."""


def found(record: dict | None, detail: str) -> dict:
    if record is None:
        raise NotFound(detail)
    return record


def page_line(shown: int, total: int, offset: int) -> str:
    if shown == total:
        return f"{total} in all"
    return f"{offset + 1}-{offset + shown} of {total}" if shown else f"none from {offset + 1}, {total} in all"


def _cmd_serve(args: argparse.Namespace) -> None:
    from api import service

    service.serve(args.host, args.port, state_path=args.state, log_level=args.log_level,
                  access_log=args.access_log)


def _cmd_demo(args: argparse.Namespace) -> None:
    from api.demo import run_demo

    local_only(args)

    run_demo(args.output, scale=args.scale)


LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")  # uvicorn's
SERVER_HELP = (f"act as a client of the midtrain API at URL (default ${SERVER_ENV}); curate, mix plan, "
               "mix build, train, catalog, sources, runs and mixtures have a server form")
TOKEN_HELP = f"the server's bearer token (default ${TOKEN_ENV})"
WAIT_HELP = ("with --server: follow the job, printing its log lines as they come; exit 0 when it "
             "succeeds, 1 when it fails or is cancelled (locally the command always runs to the end)")


def add_server_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """--server and --token, on the top-level parser with their defaults and on every command
    without (so they may come before or after the command, and the later one wins)."""
    server = (os.environ.get(SERVER_ENV) or None) if defaults else argparse.SUPPRESS
    token = (os.environ.get(TOKEN_ENV) or None) if defaults else argparse.SUPPRESS
    parser.add_argument("--server", metavar="URL", default=server, help=SERVER_HELP)
    parser.add_argument("--token", default=token, help=TOKEN_HELP)


def add_page_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--limit", type=int, default=50)
    sub.add_argument("--offset", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="midtrain", description=__doc__.split("\n")[0],
        epilog="Exit status: 0 done, 2 bad input (an HTTP 4xx from a server), 1 a job that failed or was "
               "cancelled, a server or state file that cannot be used.")
    add_server_options(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Callable, help_text: str, parent=commands) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        add_server_options(sub, defaults=False)
        return sub

    sub = command("curate", _cmd_curate, "curate sources into Parquet shards (contract 2 → 1)")
    sub.add_argument("config", type=Path,
                     help="a YAML/JSON curate config; with --server it is sent as it is, so its relative "
                          "paths are the server's, under its data roots, and a source may be a registered "
                          "source's name; the job's id is printed")
    sub.add_argument("--resume", action="store_true",
                     help="after an interrupted run of the same config: keep the inputs it "
                          "finished and process only the rest (local only)")
    sub.add_argument("--wait", action="store_true", help=WAIT_HELP)

    sub = command("catalog", _cmd_catalog,
                  "per-domain documents, tokens and quality quantiles of a curated output, through DuckDB")
    sub.add_argument("out", metavar="OUT_OR_RUN_ID",
                     help="a curated output folder; with --server, a succeeded curation run's id")

    sub = command("verify", _cmd_verify,
                  "check a curated output against its manifest: every shard's sha256, bytes and rows, "
                  "the counting invariant, dropped and quarantine records, no stray shard")
    sub.add_argument("out", type=Path)

    sub = command("report", _cmd_report, "regenerate OUT/report/ (funnel, quality histograms, stats.json); for a run "
                  "folder (RUN/train/), write RUN/report.html (funnel, composition, LR, RoPE, loss, evaluations)")
    sub.add_argument("out", type=Path, metavar="OUT_OR_RUN")
    sub.add_argument("--output", type=Path, default=None, help="a run's report file (default RUN/report.html)")

    sub = command("compare", _cmd_compare, "runs side by side in one self-contained HTML report")
    sub.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="run folders (at least two)")
    sub.add_argument("--output", type=Path, default=Path("compare.html"))

    tokenizer = commands.add_parser("tokenizer", help="tokenizer commands")
    tokenizer_commands = tokenizer.add_subparsers(dest="tokenizer_command", required=True)
    sub = command("train", _cmd_tokenizer_train, "train a byte-level BPE on curated shards",
                  parent=tokenizer_commands)
    sub.add_argument("--corpus", nargs="+", required=True, help="curated output directories")
    sub.add_argument("--output", required=True, help="tokenizer JSON file to write")
    sub.add_argument("--vocab-size", type=int, default=8192)

    classifier = commands.add_parser("classifier", help="quality and domain classifier commands")
    classifier_commands = classifier.add_subparsers(dest="classifier_command", required=True)
    sub = command("train", _cmd_classifier_train,
                  "train a fastText quality classifier (hq vs lq) and report held-out precision/recall",
                  parent=classifier_commands)
    sub.add_argument("--positive", nargs="+", required=True,
                     help="high-quality inputs: files, folders or globs of .jsonl/.txt (.gz/.zst) or .parquet")
    sub.add_argument("--negative", nargs="+", required=True, help="low-quality inputs, as --positive")
    sub.add_argument("--output", required=True, help="model file to write: .bin, or .ftz to quantise")
    sub.add_argument("--text-field", default="text", help="jsonl field or Parquet column holding the text")
    add_training_options(sub, "class")
    sub = command("train-domain", _cmd_classifier_train_domain,
                  "train a fastText domain classifier (for kind: auto sources) and report held-out "
                  "precision/recall per domain", parent=classifier_commands)
    sub.add_argument("--labelled", action="append", required=True, metavar="DOMAIN=PATTERN",
                     help="examples of one domain: a file, folder or glob of .jsonl/.txt (.gz/.zst) or "
                          ".parquet (curated shards too); repeat per domain and per pattern")
    sub.add_argument("--output", required=True, help="model file to write: .bin, or .ftz to quantise")
    sub.add_argument("--text-field", default="text", help="jsonl field or Parquet column holding the text")
    sub.add_argument("--domain-text-field", action="append", default=[], metavar="DOMAIN=FIELD",
                     help="the text field for one domain's inputs, e.g. code=content; repeatable")
    add_training_options(sub, "domain")

    mix = commands.add_parser("mix", help="mixture commands")
    mix_commands = mix.add_subparsers(dest="mix_command", required=True)
    mixture_help = ("a YAML/JSON mixture spec; with --server it is saved there as the mixture's next "
                    "version (its relative paths are the server's, under its data roots)")
    sub = command("plan", _cmd_mix_plan, "tokens per source and phase, epochs needed", parent=mix_commands)
    sub.add_argument("mixture", type=Path, help=mixture_help)
    sub.add_argument("--output", type=Path, default=None, help="also write the plan as JSON (here, also with --server)")
    sub = command("build", _cmd_mix_build, "tokenise, FIM and pack every phase", parent=mix_commands)
    sub.add_argument("mixture", type=Path, help=mixture_help)
    sub.add_argument("--output", type=Path, default=None,
                     help="the build's folder; required locally; with --server a path on the server, under "
                          "its data roots (default: one of its own under its runs folder)")
    sub.add_argument("--wait", action="store_true", help=WAIT_HELP)

    sub = command("train", _cmd_train, "run a train spec through its phases")
    sub.add_argument("spec", type=Path,
                     help="a YAML/JSON train spec; with --server it is sent as it is (relative paths are the "
                          "server's, under its data roots)")
    sub.add_argument("--mix-build", metavar="ID", default=None,
                     help="train on a succeeded mix build's output instead of the spec's mixture "
                          "(locally: its record in the state file)")
    sub.add_argument("--resume", action="store_true", help="continue from the latest checkpoint (local only)")
    sub.add_argument("--no-ray", action="store_true", help="train in this process, not a Ray task (local only)")
    sub.add_argument("--wait", action="store_true", help=WAIT_HELP)

    schedule = commands.add_parser("schedule", help="LR schedule commands")
    schedule_commands = schedule.add_subparsers(dest="schedule_command", required=True)
    sub = command("plot", _cmd_schedule_plot,
                  "draw a train spec's LR over the whole run, phases marked (needs its built mixture)",
                  parent=schedule_commands)
    sub.add_argument("spec", type=Path)
    sub.add_argument("--output", type=Path, default=None,
                     help="PNG to write (default: the spec's OUTPUT/plots/schedule.png)")
    sub.add_argument("--world-size", type=int, default=1,
                     help="data-parallel ranks the run will have (torchrun's nproc), each taking a batch a step")

    recipe = commands.add_parser("recipe", help="the mid-training survey's recipes as presets (recipes/*.yaml)")
    recipe_commands = recipe.add_subparsers(dest="recipe_command", required=True)
    command("list", _cmd_recipe_list, "the presets: phases, schedule, full-scale tokens", parent=recipe_commands)
    sub = command("show", _cmd_recipe_show, "one preset: phases, proportions, RoPE, schedule, source, approximations",
                  parent=recipe_commands)
    sub.add_argument("name", help="a preset's name or a recipe YAML file")
    sub = command("run", _cmd_recipe_run, "mix and train a preset at small scale on a curated corpus "
                  "(writes OUTPUT/NAME/recipe.json, mixture/, train/)", parent=recipe_commands)
    sub.add_argument("name", help="a preset's name or a recipe YAML file")
    sub.add_argument("--corpus", required=True, help="a curated output (contract 1)")
    sub.add_argument("--scale", type=float, default=1e-7, help="multiply every token budget (default 1e-7)")
    sub.add_argument("--seq-len", type=int, default=128,
                     help="the length the recipe's original context becomes; every phase keeps its ratio to it")
    sub.add_argument("--model", default="tiny", help="model size preset: tiny, small, 10m or 125m")
    sub.add_argument("--batch-size", type=int, default=8, help="sequences per step at the original context")
    sub.add_argument("--lr", type=float, default=3e-3, help="peak LR (the recipe's schedule shapes it)")
    sub.add_argument("--eval-every", type=int, default=50, help="steps between evaluations; 0: none")
    sub.add_argument("--tokenizer", default=None, help="a tokenizer JSON (default: train one on the corpus)")
    sub.add_argument("--vocab-size", type=int, default=4096, help="for the tokenizer trained on the corpus")
    sub.add_argument("--drop-missing", action="store_true",
                     help="drop sources the corpus has no documents for and renormalise their phase (printed)")
    sub.add_argument("--output", default="runs", help="folder of runs (default runs/)")
    sub.add_argument("--name", dest="run_name", default=None, help="run name (default RECIPE-<hash of the inputs>)")
    sub.add_argument("--no-ray", action="store_true", help="train in this process, not a Ray task")

    state_note = " (locally: the state file $MIDTRAIN_STATE, which a running server holds; with --server: that server's)"
    sources = commands.add_parser("sources", help="registered curate sources" + state_note)
    source_commands = sources.add_subparsers(dest="sources_command", required=True)
    sub = command("add", _cmd_sources_add, "register a source: its path under the data roots, matching input now",
                  parent=source_commands)
    sub.add_argument("name")
    sub.add_argument("path", help="a glob (text, code, html: also a folder); relative to the first data root")
    sub.add_argument("--format", required=True, help="jsonl, parquet, text, code, html or warc")
    sub.add_argument("--kind", default="auto", help="auto, web, code, math, instruction, reasoning or synthetic")
    sub.add_argument("--text-field", default="text", help="jsonl field or Parquet column holding the text")
    sub.add_argument("--id-field", default=None, help="jsonl/Parquet field or WARC header holding the id")
    sub = command("list", _cmd_sources_list, "registered sources, by name", parent=source_commands)
    add_page_options(sub)
    sub = command("show", _cmd_sources_show, "one source's stored entry, as JSON", parent=source_commands)
    sub.add_argument("name")
    sub = command("rm", _cmd_sources_rm, "forget a source", parent=source_commands)
    sub.add_argument("name")

    mixtures = commands.add_parser("mixtures", help="saved mixture versions" + state_note)
    mixture_commands = mixtures.add_subparsers(dest="mixtures_command", required=True)
    sub = command("save", _cmd_mixtures_save, "save a mixture spec as its name's next version",
                  parent=mixture_commands)
    sub.add_argument("spec", type=Path, help="a YAML/JSON mixture spec; its paths must lie under the data roots")
    sub = command("list", _cmd_mixtures_list, "the latest version of every mixture", parent=mixture_commands)
    add_page_options(sub)
    sub = command("show", _cmd_mixtures_show, "one mixture version, as JSON", parent=mixture_commands)
    sub.add_argument("name")
    sub.add_argument("--version", type=int, default=None, help="default: the latest")

    runs = commands.add_parser("runs", help="curation runs, mix builds and training runs" + state_note)
    run_commands = runs.add_subparsers(dest="runs_command", required=True)
    sub = command("list", _cmd_runs_list, "jobs, newest first (locally, as the state file last recorded them)",
                  parent=run_commands)
    sub.add_argument("--kind", choices=JOB_KINDS, default=None)
    sub.add_argument("--status", choices=JOB_STATUSES, default=None)
    add_page_options(sub)
    sub = command("show", _cmd_runs_show, "one job's record (status, progress, result or error), as JSON",
                  parent=run_commands)
    sub.add_argument("id")
    sub = command("logs", _cmd_runs_logs, "a job's log lines", parent=run_commands)
    sub.add_argument("id")
    sub.add_argument("--follow", action="store_true",
                     help="keep printing lines until the job ends; exit 1 unless it succeeded")
    sub = command("cancel", _cmd_runs_cancel, "stop a running job (locally: needs its Ray cluster, RAY_ADDRESS)",
                  parent=run_commands)
    sub.add_argument("id")

    sub = command("serve", _cmd_serve, "run the REST API")
    sub.add_argument("--host", default="127.0.0.1")
    sub.add_argument("--port", type=int, default=8000)
    sub.add_argument("--state", default=None, help="DuckDB state file")
    sub.add_argument("--log-level", default="info", choices=LOG_LEVELS, help="uvicorn's log level (default: info)")
    sub.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True,
                     help="log a line per request (default: on; a line costs about 0.1 ms of the server's CPU)")

    sub = command("demo", _cmd_demo, "curate → tokenizer → mix → train on the bundled sample")
    sub.add_argument("--output", default="runs/demo")
    sub.add_argument("--scale", type=float, default=1.0, help="multiply every token budget")
    return parser


# Errors that are the user's input, reported on one line; anything else is a bug and keeps
# its traceback.
USER_ERRORS = (SpecError, InvariantError, FileNotFoundError, ValueError, KeyError, NotFound)


def exit_status(error: BaseException) -> int | None:
    """2 for bad input (an HTTP 4xx), 1 for a failed job or something unavailable (an HTTP
    5xx, a server that does not answer); None for a bug. Error types of modules this run never
    imported cannot have been raised, so they are looked up, not imported."""
    if isinstance(error, (JobFailed, Unavailable, VerifyError, OutputWriteError)):  # the last: disk full, ...
        return 1
    if isinstance(error, USER_ERRORS):
        return 2
    for module, name in (("api.client", "ClientError"), ("api.deps", "ProblemError")):
        kind = getattr(sys.modules.get(module), name, None)
        if kind is not None and isinstance(error, kind):
            return 2 if error.status < 500 else 1
    job_state = getattr(sys.modules.get("api.jobs"), "JobStateError", None)  # a 409 on the server
    if job_state is not None and isinstance(error, job_state):
        return 2
    httpx = sys.modules.get("httpx")
    if httpx is not None and isinstance(error, httpx.HTTPError):
        return 1
    return None


def error_line(error: BaseException, args: argparse.Namespace) -> str:
    httpx = sys.modules.get("httpx")
    if httpx is not None and isinstance(error, httpx.HTTPError):
        return f"cannot reach {args.server}: {str(error) or type(error).__name__}"
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.server and args.handler is not _cmd_serve and importlib_missing("httpx"):
        print("midtrain: error: --server needs httpx (pip install httpx)", file=sys.stderr)
        return 2
    try:
        args.handler(args)
    except Exception as error:
        status = exit_status(error)
        if status is None:
            raise
        print(f"midtrain: error: {error_line(error, args)}", file=sys.stderr)
        return status
    return 0


def importlib_missing(name: str) -> bool:
    from importlib.util import find_spec

    return find_spec(name) is None


if __name__ == "__main__":
    sys.exit(main())
