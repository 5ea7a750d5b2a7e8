"""The ``midtrain`` command line. Every command calls a function of ``api.service`` (the same
ones the REST API calls) and exits non-zero with a one-line reason on bad input."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from corpus.manifest import InvariantError
from corpus.specfile import SpecError

if TYPE_CHECKING:
    from filters.classifier import TrainingSettings


def _cmd_curate(args: argparse.Namespace) -> None:
    from api import service

    manifest = service.curate(args.config, resume=args.resume)
    print(service.format_table(service.manifest_summary(manifest)))


def _cmd_catalog(args: argparse.Namespace) -> None:
    from api import service

    print(service.format_table(service.catalog(args.out)))


def _cmd_report(args: argparse.Namespace) -> None:
    from api import service
    from pipelines.report import funnel_rows, load_stats

    directory = service.report(args.out)
    print(service.format_table(funnel_rows(load_stats(directory))))
    print(f"report: {directory}")


def _cmd_tokenizer_train(args: argparse.Namespace) -> None:
    from api import service

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
    from mixer.plan import format_plan_table

    plan = service.mix_plan(args.mixture, output=args.output)
    print(format_plan_table(plan))


def _cmd_mix_build(args: argparse.Namespace) -> None:
    from api import service
    from mixer.build import format_report_table

    report = service.mix_build(args.mixture, args.output)
    print(format_report_table(report))


def _cmd_train(args: argparse.Namespace) -> None:
    from api import service

    summary = service.train(args.spec, resume=args.resume, on_ray=not args.no_ray)
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
    from trainer.plots import PLOTS_DIR, plot_schedule, schedule_curve, schedule_lines
    from trainer.spec import load_train_spec
    from trainer.train import plan_phases

    spec = load_train_spec(args.spec)
    planned = plan_phases(spec, args.world_size)  # reads the built mixture: each phase's steps and tokens
    output = args.output if args.output is not None else Path(spec.output) / PLOTS_DIR / "schedule.png"
    print(plot_schedule(spec, output, planned))
    for line in schedule_lines(schedule_curve(spec, planned)):
        print(line)


def _cmd_serve(args: argparse.Namespace) -> None:
    from api import service

    service.serve(args.host, args.port, state_path=args.state)


def _cmd_demo(args: argparse.Namespace) -> None:
    from api.demo import run_demo

    run_demo(args.output, scale=args.scale)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="midtrain", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Callable, help_text: str, parent=commands) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    sub = command("curate", _cmd_curate, "curate sources into Parquet shards (contract 2 → 1)")
    sub.add_argument("config", type=Path)
    sub.add_argument("--resume", action="store_true",
                     help="after an interrupted run of the same config: keep the inputs it "
                          "finished and process only the rest")

    sub = command("catalog", _cmd_catalog,
                  "per-domain documents, tokens and quality quantiles of a curated output, through DuckDB")
    sub.add_argument("out", type=Path)

    sub = command("report", _cmd_report, "regenerate OUT/report/ (funnel, quality histograms, stats.json)")
    sub.add_argument("out", type=Path)

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
    sub = command("plan", _cmd_mix_plan, "tokens per source and phase, epochs needed", parent=mix_commands)
    sub.add_argument("mixture", type=Path)
    sub.add_argument("--output", type=Path, default=None, help="also write the plan as JSON")
    sub = command("build", _cmd_mix_build, "tokenise, FIM and pack every phase", parent=mix_commands)
    sub.add_argument("mixture", type=Path)
    sub.add_argument("--output", type=Path, required=True)

    sub = command("train", _cmd_train, "run a train spec through its phases")
    sub.add_argument("spec", type=Path)
    sub.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    sub.add_argument("--no-ray", action="store_true", help="train in this process, not a Ray task")

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

    sub = command("serve", _cmd_serve, "run the REST API")
    sub.add_argument("--host", default="127.0.0.1")
    sub.add_argument("--port", type=int, default=8000)
    sub.add_argument("--state", default=None, help="DuckDB state file")

    sub = command("demo", _cmd_demo, "curate → tokenizer → mix → train on the bundled sample")
    sub.add_argument("--output", default="runs/demo")
    sub.add_argument("--scale", type=float, default=1.0, help="multiply every token budget")
    return parser


# Errors that are the user's input, reported on one line; anything else is a bug and keeps
# its traceback.
USER_ERRORS = (SpecError, InvariantError, FileNotFoundError, ValueError, KeyError)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except USER_ERRORS as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"midtrain: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
