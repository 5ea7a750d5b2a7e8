"""bench/api.py's core on a tiny corpus, few clients and a few seconds: a real ``midtrain serve``
with its own Ray and a curation run through the API; the JSON's shape is checked, not timings."""

from __future__ import annotations

import json

import pytest

from bench.api import Settings, compose_serve_flags, percentile, run_bench, serve_flags, table, write_corpus
from bench.results import write_result
from mixer.plan import plan_mixture
from mixer.spec import MixtureSpec
from mixer.tokenizer import train_tokenizer

pytestmark = pytest.mark.slow
SUMMARY = {"count", "errors", "error_kinds", "p50_ms", "p99_ms", "max_ms", "mean_ms", "seconds",
           "requests_per_second"}


def test_percentiles_are_nearest_rank():
    values = [float(value) for value in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0 and percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0 and percentile([], 50) is None


def test_the_server_runs_with_compose_flags_unless_told():
    """The bench measures the API as docker-compose.yml deploys it; --access-log overrides."""
    assert compose_serve_flags() == ["--no-access-log"]
    assert serve_flags(None) == ["--no-access-log"]
    assert serve_flags(True) == ["--access-log"] and serve_flags(False) == ["--no-access-log"]


def test_the_written_corpus_is_what_the_planner_reads(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", 300)
    assert corpus["documents"] == 300 and corpus["per_domain"] == {"web": 100, "code": 100, "math": 100}
    tokenizer = train_tokenizer([str(tmp_path / "corpus")], str(tmp_path / "tok.json"), vocab_size=300)
    spec = MixtureSpec.model_validate({
        "name": "m", "corpus": [str(tmp_path / "corpus")], "tokenizer": str(tokenizer), "seed": 1,
        "phases": [{"name": "p", "tokens": 4096, "seq_len": 64,
                    "sources": [{"name": d, "select": {"domain": d}, "weight": 1.0} for d in ("web", "code", "math")]}]})
    plan = plan_mixture(spec)
    assert [source.documents for source in plan.phases[0].sources] == [100, 100, 100]


def test_a_short_run_reports_every_group_with_targets(tmp_path, capsys):
    settings = Settings(documents=600, clients=3, seconds=2.0, plan_seconds=2.0, plan_single=2, timeout=60.0,
                        mixtures=2, curation_documents=200, curation_files=2, workdir=tmp_path / "work")
    result = run_bench(settings)
    assert set(result) == {"bench", "machine", "settings", "server", "corpus", "groups", "curation", "targets"}
    assert result["server"]["command"] == ["midtrain", "serve", "--no-access-log"]
    assert result["corpus"]["documents"] == 600
    groups = result["groups"]
    assert set(groups) == {"reads", "plan_single", "plan"}
    for name, summary in groups.items():
        assert SUMMARY <= set(summary), name
        assert summary["count"] >= 1 and summary["errors"] == 0, (name, summary)
        assert 0.0 <= summary["curation_running_share"] <= 1.0
    assert set(groups["reads"]["endpoints"]) == {"GET /mixtures", "GET /mixtures/{name}", "GET /curation-runs",
                                                 "GET /curation-runs/{id}"}
    assert groups["plan_single"]["count"] == 2
    assert groups["reads"]["target_p99_ms"] == 100.0 and groups["plan"]["target_p99_ms"] == 1000.0
    assert isinstance(groups["reads"]["pass"], bool) and "pass" not in groups["plan_single"]
    assert result["targets"]["reads_pass"] == groups["reads"]["pass"]
    runs = result["curation"]["runs"]
    assert runs and runs[0]["id"].startswith("curat-")
    assert all(run["status"] in ("succeeded", "cancelled") for run in runs), runs
    path = write_result(tmp_path / "out", "api", result)
    assert json.loads(path.read_text()) == result
    printed = table(result)
    assert "GET /curation-runs/{id}" in printed and ("PASS" in printed or "FAIL" in printed)
