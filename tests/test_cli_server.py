"""``midtrain --server URL``: the CLI as a client of a real server (uvicorn on a free port, real
HTTP), one small curation run on the shared Ray; then the same state through the local
commands once the server has stopped and let go of the state file."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from api.app import create_app
from api.cli import main
from api.paths import DataRoots
from api_server import Server
from mixer.tokenizer import train_tokenizer

pytestmark = pytest.mark.usefixtures("ray_runtime")
TOKEN = "cli-test-token"
WORDS = "alpha beta gamma delta value total count index result buffer node item".split()
ENV = ("MIDTRAIN_SERVER", "MIDTRAIN_API_TOKEN", "MIDTRAIN_STATE", "MIDTRAIN_DATA_ROOTS", "MIDTRAIN_RUNS")


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


class ThisThread(io.StringIO):
    """Captures what this thread writes; other threads' writes (Ray forwarding its workers'
    output to the driver, this process) go to ``original``."""

    def __init__(self, original) -> None:
        super().__init__()
        self.original, self.thread = original, threading.current_thread()

    def write(self, text: str) -> int:
        if threading.current_thread() is self.thread:
            return super().write(text)
        return self.original.write(text)


def run(*argv: str) -> Result:
    """``main(argv)`` with what it prints to stdout and stderr captured."""
    out, err = ThisThread(sys.stdout), ThisThread(sys.stderr)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(arg) for arg in argv])
    return Result(code, out.getvalue(), err.getvalue())


def code_document(rng: random.Random, number: int) -> str:
    return "".join(f"def f{number}_{line}({rng.choice(WORDS)}):\n    return {rng.choice(WORDS)} + {line}\n"
                   for line in range(rng.randint(6, 12)))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A data root with 20 code documents, a server on it (token required), the source
    registered and curated by ``curate --wait`` through the CLI."""
    root = tmp_path_factory.mktemp("cli-server")
    rng = random.Random(0)
    (root / "data").mkdir()
    (root / "data" / "code.jsonl").write_text("".join(
        json.dumps({"id": str(number), "text": code_document(rng, number)}) + "\n" for number in range(20)))
    with pytest.MonkeyPatch.context() as patch:
        for name in ENV:
            patch.delenv(name, raising=False)
        patch.setenv("MIDTRAIN_API_TOKEN", TOKEN)  # create_app reads it once
        app = create_app(str(root / "state.duckdb"), data_roots=DataRoots((root,)), runs_root=root / "runs",
                         reconcile_seconds=0.2)
    server = Server(app)
    try:
        added = remote(server, "sources", "add", "code", "data/code.jsonl", "--format", "jsonl", "--kind", "code",
                       "--id-field", "id")
        assert added.code == 0, added.err
        (root / "curate.yaml").write_text("output: curated\nsources: [code]\n")  # a registered source, by name
        curated = remote(server, "curate", root / "curate.yaml", "--wait")
        yield {"root": root, "server": server, "curated": curated, "job": curated.lines[0]}
    finally:
        server.stop()


def remote(server: Server, *argv) -> Result:
    return run("--server", server.url, "--token", TOKEN, *argv)


@pytest.fixture(scope="module")
def mixture_file(site) -> Path:
    root = site["root"]
    train_tokenizer([str(root / "curated")], str(root / "tokenizer.json"), vocab_size=300)
    spec = {"name": "cli-mix", "corpus": ["curated"], "tokenizer": "tokenizer.json", "seed": 5,
            "phases": [{"name": "p", "tokens": 64 * 8, "seq_len": 64,
                        "sources": [{"name": "code", "select": {"domain": "code"}, "weight": 1.0,
                                     "max_epochs": 40}]}]}
    (root / "mix.yaml").write_text(json.dumps(spec))
    return root / "mix.yaml"


def test_curate_wait_prints_the_id_streams_the_log_and_the_summary(site):
    curated = site["curated"]
    assert curated.code == 0 and curated.err == ""
    assert re.fullmatch(r"curat-[0-9a-f]{12}", site["job"])
    assert curated.lines[1] == "job: curation started"
    assert any(line.startswith("curate: 20 in, ") for line in curated.lines)
    assert re.search(r"^input\s+20$", curated.out, re.MULTILINE)  # service.manifest_summary's table


def test_runs_list_show_logs_and_cancel_through_the_server(site):
    server, job = site["server"], site["job"]
    listed = remote(server, "runs", "list")
    assert listed.code == 0 and re.search(rf"^{job}\s+curation\s+succeeded\s", listed.out, re.MULTILINE)
    assert listed.lines[-1] == "1 in all"
    assert remote(server, "runs", "list", "--kind", "training").lines[0] == "(empty)"
    record = json.loads(remote(server, "runs", "show", job).out)
    assert record["status"] == "succeeded" and record["result"]["counts"]["input"] == 20
    assert record["request"]["sources"][0]["name"] == "code"  # the registered entry, resolved
    logs = remote(server, "runs", "logs", job)
    assert logs.code == 0 and logs.lines == site["curated"].lines[1:1 + len(logs.lines)]
    assert remote(server, "runs", "logs", job, "--follow").out == logs.out
    cancelled = remote(server, "runs", "cancel", job)
    assert cancelled.code == 2 and cancelled.err.count("\n") == 1
    assert cancelled.err.startswith("midtrain: error: HTTP 409: ") and "only a running job" in cancelled.err


def test_catalog_of_a_run_id_is_the_local_catalog_of_its_output(site):
    remote_table = remote(site["server"], "catalog", site["job"])
    assert remote_table.code == 0 and "code" in remote_table.out
    assert remote_table.out == run("catalog", site["root"] / "curated").out


def test_sources_add_list_show_rm(site):
    server, root = site["server"], site["root"]
    added = remote(server, "sources", "add", "extra", "data/*.jsonl", "--format", "jsonl")
    assert added.code == 0, added.err
    assert json.loads(added.out)["spec"]["path"] == str(root / "data" / "*.jsonl")  # confined and resolved
    listed = remote(server, "sources", "list")
    assert [line.split()[0] for line in listed.lines[2:-1]] == ["code", "extra"] and listed.lines[-1] == "2 in all"
    assert json.loads(remote(server, "sources", "show", "extra").out)["spec"]["format"] == "jsonl"
    assert remote(server, "sources", "rm", "extra").out == "deleted source extra\n"
    gone = remote(server, "sources", "show", "extra")
    assert (gone.code, gone.out, gone.err) == (2, "", "midtrain: error: HTTP 404: no source 'extra'\n")


def test_mixtures_save_list_show_and_mix_plan(site, mixture_file, monkeypatch):
    server = site["server"]
    saved = remote(server, "mixtures", "save", mixture_file)
    assert saved.code == 0, saved.err
    assert json.loads(saved.out)["version"] == 1
    planned = remote(server, "mix", "plan", mixture_file, "--output", site["root"] / "plan.json")
    assert planned.code == 0, planned.err
    assert json.loads((site["root"] / "plan.json").read_text())["mixture"] == "cli-mix"
    monkeypatch.chdir(site["root"])  # the spec's relative paths: the server's data root, and here the cwd
    assert planned.out == run("mix", "plan", mixture_file).out  # mixer.plan.format_plan_table, both ways
    listed = remote(server, "mixtures", "list")
    assert re.search(r"^cli-mix\s+2\s+1\s+512\s", listed.out, re.MULTILINE)  # mix plan saved version 2
    shown = json.loads(remote(server, "mixtures", "show", "cli-mix", "--version", "1").out)
    assert shown["version"] == 1 and shown["spec"]["corpus"] == ["curated"]  # stored as given
    assert remote(server, "mixtures", "show", "cli-mix", "--version", "9").err == \
        "midtrain: error: HTTP 404: no mixture 'cli-mix' version 9\n"


def test_mix_build_wait_prints_the_build_report(site, mixture_file):
    built = remote(site["server"], "mix", "build", mixture_file, "--wait")
    assert built.code == 0, built.err
    assert re.fullmatch(r"mixbu-[0-9a-f]{12}", built.lines[0]) and built.lines[1] == "job: mix-build started"
    assert built.lines[-1].startswith("fingerprint ")  # mixer.build.format_report_table


def test_a_failed_job_exits_1_with_its_error_on_one_line(site, mixture_file, tmp_path):
    spec = {**json.loads(mixture_file.read_text()), "name": "no-corpus", "corpus": ["not-curated"]}
    (tmp_path / "mix.yaml").write_text(json.dumps(spec))  # saved: paths are checked on disk when used
    failed = remote(site["server"], "mix", "build", tmp_path / "mix.yaml", "--wait")
    assert failed.code == 1 and re.fullmatch(r"mixbu-[0-9a-f]{12}", failed.lines[0])
    assert failed.err.count("\n") == 1
    assert re.match(r"midtrain: error: job mixbu-[0-9a-f]{12} failed: \w+", failed.err), failed.err


@pytest.mark.parametrize("argv, words", [
    (["sources", "add", "bad", "../data/code.jsonl", "--format", "jsonl"], "HTTP 422: field path: '../data/code.jsonl' contains '..'"),
    (["sources", "add", "bad", "data/code.jsonl", "--format", "csv"], "HTTP 422: field format: "),
    (["runs", "show", "nothing-here"], "HTTP 404: no job 'nothing-here'"),
    (["report", "curated"], "runs locally only"),
])
def test_bad_input_is_one_line_and_exit_2(site, argv, words):
    refused = remote(site["server"], *argv)
    assert refused.code == 2 and refused.out == ""
    assert refused.err.count("\n") == 1 and refused.err.startswith("midtrain: error: ") and words in refused.err


def test_a_curate_config_outside_the_roots_names_the_field(site, tmp_path):
    (tmp_path / "curate.yaml").write_text(f"output: out\nsources: [{{name: x, path: {tmp_path}/*.jsonl, format: jsonl}}]\n")
    refused = remote(site["server"], "curate", tmp_path / "curate.yaml")
    assert refused.code == 2 and "HTTP 422: field config.sources.0.path: " in refused.err
    assert "outside the data roots" in refused.err


def test_a_wrong_token_is_a_401_and_the_environment_gives_the_defaults(site, monkeypatch):
    wrong = run("--server", site["server"].url, "--token", "wrong", "sources", "list")
    assert (wrong.code, wrong.err) == (2, "midtrain: error: HTTP 401: a valid bearer token is required\n")
    monkeypatch.setenv("MIDTRAIN_SERVER", site["server"].url)
    monkeypatch.setenv("MIDTRAIN_API_TOKEN", TOKEN)
    assert run("sources", "list").lines[-1] == "1 in all"
    monkeypatch.setenv("MIDTRAIN_API_TOKEN", "wrong")
    assert run("sources", "list").code == 2
    assert run("sources", "list", "--token", TOKEN).code == 0  # after the command, as before it


def test_an_unreachable_server_is_one_line_and_exit_1():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, not listening: refused
        refused = run("--server", url, "sources", "list")
    assert refused.code == 1 and refused.err.startswith(f"midtrain: error: cannot reach {url}: ")
    assert refused.err.count("\n") == 1


def test_the_state_file_is_locked_while_the_server_holds_it(site):
    environment = {**os.environ, "MIDTRAIN_STATE": str(site["root"] / "state.duckdb")}
    environment.pop("MIDTRAIN_SERVER", None)
    result = subprocess.run([sys.executable, "-m", "api.cli", "sources", "list"], capture_output=True, text=True,
                            env=environment, timeout=60)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "cannot be opened" in result.stderr and "use --server URL" in result.stderr


def test_local_commands_see_the_same_state_once_the_server_stops(site, mixture_file, monkeypatch):
    server, root, job = site["server"], site["root"], site["job"]
    seen = {argv: remote(server, *argv).out for argv in
            [("runs", "list"), ("runs", "show", job), ("runs", "logs", job), ("sources", "list"),
             ("mixtures", "list"), ("mixtures", "show", "cli-mix", "--version", "1")]}
    server.stop()
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MIDTRAIN_STATE", str(root / "state.duckdb"))
    monkeypatch.setenv("MIDTRAIN_DATA_ROOTS", str(root))
    monkeypatch.setenv("MIDTRAIN_RUNS", str(root / "runs"))
    monkeypatch.chdir(root)
    for argv, out in seen.items():
        local = run(*argv)
        assert local.code == 0, (argv, local.err)
        if argv[1] == "show":
            assert json.loads(local.out) == json.loads(out), argv
        else:
            assert local.out == out, argv
    assert run("runs", "logs", job, "--follow").out == seen[("runs", "logs", job)]
    finished = run("runs", "cancel", job)
    assert finished.code == 2 and "only a running job can be cancelled" in finished.err

    added = run("sources", "add", "local", "data/code.jsonl", "--format", "jsonl")
    assert added.code == 0 and json.loads(added.out)["spec"]["path"] == str(root / "data" / "code.jsonl")
    again = run("sources", "add", "local", "data/code.jsonl", "--format", "jsonl")
    assert (again.code, again.err) == (2, "midtrain: error: a source named 'local' is registered already\n")
    assert run("sources", "add", "bad", "data/code.jsonl", "--format", "csv").err.startswith(
        "midtrain: error: field format: ")
    assert run("sources", "rm", "local").code == 0
    assert run("sources", "show", "local").err == "midtrain: error: no source 'local'\n"

    latest = json.loads(run("mixtures", "show", "cli-mix").out)["version"]
    saved = run("mixtures", "save", mixture_file)
    assert saved.code == 0 and json.loads(saved.out)["version"] == latest + 1
    assert re.search(rf"^cli-mix\s+{latest + 1}\s", run("mixtures", "list").out, re.MULTILINE)
    spec = {**json.loads(mixture_file.read_text()), "corpus": [str(root.parent)]}
    (root / "outside.yaml").write_text(json.dumps(spec))
    outside = run("mixtures", "save", root / "outside.yaml")
    assert outside.code == 2 and outside.err.count("\n") == 1
    assert outside.err.startswith("midtrain: error: field corpus.0: ") and "outside the data roots" in outside.err
