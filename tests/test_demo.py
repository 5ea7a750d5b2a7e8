"""End to end: `midtrain demo` on the bundled sample at a tiny token scale."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from api.demo import run_demo
from corpus.manifest import check_invariant, read_manifest
from mixer.spec import load_mixture
from mixer.stream import read_phase_info
from api.service import EXAMPLES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(ray_runtime, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    summary = run_demo(out, scale=0.05, progress=lines.append)
    return {"out": out, "summary": summary, "lines": lines}


def test_curation_accounts_for_every_sample_record(demo):
    manifest = read_manifest(demo["out"] / "curated")
    check_invariant(manifest.counts)
    ground_truth = json.loads((EXAMPLES / "sample" / "ground_truth.json").read_text())
    bad_lines = {(bad["file"], f"line {bad['line']}") for bad in ground_truth["sources"]["web"]["bad_lines"]}
    quarantine = pq.read_table(demo["out"] / "curated" / "quarantine").to_pylist()
    found = {(str(Path(row["file"]).relative_to(EXAMPLES / "sample")), row["location"]) for row in quarantine}
    assert found == bad_lines and manifest.counts.quarantined == len(bad_lines)
    assert manifest.counts.dropped["exact_duplicate"] >= 1
    assert set(manifest.domains) == {"web", "code", "math", "instruction", "reasoning", "synthetic"}


def test_every_phase_is_built_and_trained(demo):
    mixture = load_mixture(EXAMPLES / "mixture.yaml")
    phases = {phase["name"]: phase for phase in demo["summary"]["training"]["phases"]}
    assert list(phases) == [phase.name for phase in mixture.phases]
    for spec_phase in mixture.phases:
        info = read_phase_info(demo["out"] / "mix", spec_phase.name)
        assert info.seq_len == spec_phase.seq_len
        trained = phases[spec_phase.name]
        assert trained["steps"] > 0 and trained["seq_len"] == spec_phase.seq_len
        assert math.isfinite(trained["last_loss"])
    assert phases["long-context"]["rope"] == "abf"


def test_best_fit_truncates_fewer_documents_than_concat_on_the_sample(demo):
    """The packing target: one epoch of the curated sample at 2048 tokens."""
    from bench.mixing import packing

    result = packing(demo["out"] / "curated", demo["out"] / "tokenizer.json", 2048)
    concat, best = result["concat"], result["best_fit"]
    assert best["documents_truncated"] < concat["documents_truncated"]
    assert best["padding_share"] <= 0.01 and best["tokens_dropped"] == 0
    assert set(best["epochs"].values()) == {1.0}
    assert best["max_share_error"] <= 0.005 and concat["max_share_error"] <= 0.005


def test_every_phase_end_is_evaluated(demo):
    """Held-out perplexity per domain, passkey at both context lengths and FIM exact match."""
    records = [json.loads(line) for line in (demo["out"] / "train" / "eval.jsonl").read_text().splitlines()]
    ends = [record for record in records if record["phase_end"]]
    assert [record["phase"] for record in ends] == ["general", "anneal", "long-context"]
    for record in ends:
        assert set(record["passkey"]) == {"256", "1024"}
        assert all(0.0 <= value <= 1.0 for value in record["passkey"].values())
        fim = record["fim_exact_match"]  # n is 0 when the held-out batches hold no code
        assert fim["n"] >= 0 and (fim["exact_match"] is None) == (fim["n"] == 0)
        general = record["eval"]["general"]
        assert general["perplexity"] == pytest.approx(math.exp(general["loss"]), rel=1e-3)
        assert set(general["perplexity_by_domain"]) == set(general["loss_by_domain"])
    plots = {path.name for path in (demo["out"] / "train" / "plots").glob("*.png")}
    assert {"loss.png", "eval_perplexity.png", "passkey.png"} <= plots, plots


def test_loss_falls_from_the_start(demo):
    phases = demo["summary"]["training"]["phases"]
    assert phases[-1]["last_loss"] < phases[0]["first_loss"]


def test_summary_is_written_and_printed(demo):
    text = (demo["out"] / "summary.txt").read_text()
    assert "dropped: exact_duplicate" in text and "long-context" in text
    assert any("demo: curate" in line for line in demo["lines"])
    metrics = (demo["out"] / "train" / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == sum(phase["steps"] for phase in demo["summary"]["training"]["phases"])


def test_the_demo_ends_with_a_run_report_and_what_each_phase_changed(demo):
    report = demo["out"] / "report.html"
    assert demo["summary"]["report"] == str(report) and report.exists()
    html = report.read_text()
    for section in ("Curation funnel", "Composition per phase", "Learning rate", "RoPE frequencies", "Loss",
                    "what each phase changed"):
        assert section in html, section
    effects = demo["summary"]["phase_effects"]
    assert [(row["from"], row["phase"]) for row in effects] == [("general", "anneal"), ("anneal", "long-context")]
    assert all(row["held-out set"] == "general" and "Δ loss web" in row for row in effects)
    assert "Δ passkey 1024" in effects[1]
    assert "what each phase changed" in (demo["out"] / "summary.txt").read_text()
