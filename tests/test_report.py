"""The curation report and the catalog's quality quantiles, over a contract-1 OUT written by
hand with pyarrow so every expected number below is known without running a pipeline."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from matplotlib import image

from api.cli import main
from corpus.catalog import domain_table
from corpus.manifest import Counts, DomainTotals, Manifest, read_manifest, write_manifest
from corpus.schema import DROPPED_SCHEMA, QUARANTINE_SCHEMA, SHARD_SCHEMA
from pipelines.report import NO_STAGE, ReportError, funnel_rows, load_stats, write_report

STAGES = ["normalize", "domain", "language", "tokens", "gopher_quality", "quality", "exact_dedup"]

# (source, lang, quality, n_tokens) per kept document.
KEPT = {
    # 0.44999999999999996 sits just below a bin edge, where floor(q * 20) is one bin off.
    "web": [("web-a", "en", 0.0, 100), ("web-a", "en", 0.44999999999999996, 200), ("web-a", "de", 0.5, 300),
            ("web-b", "en", 0.8, 400), ("web-b", "en", 1.0, 500)],
    "code": [("code-a", "en", 0.2, 50), ("code-a", "en", 0.6, 60), ("code-a", "en", 0.65, 70)],
}

# (stage, reason, source, domain, lang, n_chars, n_tokens) per dropped document. The first
# three were dropped before the "tokens" stage, so they carry no usable token count.
DROPPED = [
    ("normalize", "empty_text", "web-a", None, None, 0, None),
    ("language", "lang_not_allowed", "web-a", "web", "fr", 50, 0),
    ("language", "lang_not_allowed", "web-b", "web", "fr", 60, 0),
    ("gopher_quality", "gopher_short_doc", "web-a", "web", "en", 40, 10),
    ("gopher_quality", "gopher_short_doc", "web-b", "web", "en", 45, 12),
    ("gopher_quality", "gopher_stop_words", "web-a", "web", "en", 160, 40),
    ("quality", "low_quality", "code-a", "code", "en", 120, 30),
    ("exact_dedup", "exact_duplicate", "web-a", "web", "en", 400, 100),
    ("exact_dedup", "exact_duplicate", "web-b", "web", "en", 400, 100),
    ("pii", "pii_heavy", "web-b", "web", "en", 28, 7),  # a stage the manifest does not list
    (None, "legacy_reason", "code-a", "code", "en", 20, 5),  # a writer that recorded no stage
]
QUARANTINED = 2
INPUT = 8 + len(DROPPED) + QUARANTINED  # 21

# The funnel worked out by hand: (stage, documents in, dropped, documents out, tokens in, tokens out).
# Kept tokens are 1680; dropped tokens 304; appended stages come after the manifest's, by name.
EXPECTED_FUNNEL = [
    ("normalize", 19, 1, 18, 1984, 1984),
    ("domain", 18, 0, 18, 1984, 1984),
    ("language", 18, 2, 16, 1984, 1984),
    ("tokens", 16, 0, 16, 1984, 1984),
    ("gopher_quality", 16, 3, 13, 1984, 1922),
    ("quality", 13, 1, 12, 1922, 1892),
    ("exact_dedup", 12, 2, 10, 1892, 1692),
    (NO_STAGE, 10, 1, 9, 1692, 1687),
    ("pii", 9, 1, 8, 1687, 1680),
]


def shard_rows(domain: str) -> list[dict]:
    return [
        {"id": f"{domain}-{i}", "text": "x" * (10 * n_tokens), "source": source, "domain": domain,
         "lang": lang, "lang_score": 0.9, "quality": quality, "scores": [("q", quality)],
         "tags": ["long_doc"] if n_tokens >= 400 else [], "n_chars": 10 * n_tokens,
         "n_tokens": n_tokens, "dup_cluster": None, "meta": "{}"}
        for i, (source, lang, quality, n_tokens) in enumerate(KEPT[domain])
    ]


def dropped_rows() -> list[dict]:
    return [
        {"id": f"d{i}", "source": source, "stage": stage, "reason": reason, "domain": domain,
         "lang": lang, "text": "y" * n_chars, "n_chars": n_chars, "n_tokens": n_tokens,
         "scores": [], "dup_cluster": None, "meta": "{}", "file": "in.jsonl", "location": f"line {i}"}
        for i, (stage, reason, source, domain, lang, n_chars, n_tokens) in enumerate(DROPPED)
    ]


def build_manifest(stages: list[str] = STAGES) -> Manifest:
    dropped: dict[str, int] = {}
    for row in DROPPED:
        dropped[row[1]] = dropped.get(row[1], 0) + 1
    domains = {
        domain: DomainTotals(documents=len(docs), chars=sum(10 * d[3] for d in docs), tokens=sum(d[3] for d in docs))
        for domain, docs in KEPT.items()
    }
    return Manifest(
        run_id="r1", config_hash="h", started_at="t0", finished_at="t1", tokenizer="bytelevel-pretokens",
        inputs=[], counts=Counts(input=INPUT, kept=8, dropped=dropped, quarantined=QUARANTINED),
        domains=domains, shards=[], stages=stages,
    )


def write_out(out: Path, manifest: Manifest) -> Path:
    for domain in KEPT:
        directory = out / "shards" / f"domain={domain}"
        directory.mkdir(parents=True)
        rows = shard_rows(domain)
        # Two files per domain, so the queries must read across files.
        pq.write_table(pa.Table.from_pylist(rows[:2], SHARD_SCHEMA), directory / "part-00000.parquet")
        pq.write_table(pa.Table.from_pylist(rows[2:], SHARD_SCHEMA), directory / "part-00001.parquet")
    (out / "dropped").mkdir()
    pq.write_table(pa.Table.from_pylist(dropped_rows(), DROPPED_SCHEMA), out / "dropped" / "part-00000.parquet")
    (out / "quarantine").mkdir()
    quarantine = [{"source": "web-a", "file": "in.jsonl", "location": f"line {i}", "error": "bad json",
                   "raw": "{"} for i in range(QUARANTINED)]
    pq.write_table(pa.Table.from_pylist(quarantine, QUARANTINE_SCHEMA), out / "quarantine" / "part-00000.parquet")
    write_manifest(out, manifest)
    return out


@pytest.fixture()
def out(tmp_path) -> Path:
    return write_out(tmp_path / "run", build_manifest())


@pytest.fixture()
def stats(out) -> dict:
    return load_stats(write_report(out, read_manifest(out)))


def test_funnel_counts_documents_and_tokens_through_every_stage(stats):
    funnel = stats["funnel"]
    assert funnel[0] == {"stage": "input", "documents_out": 21}
    assert funnel[1]["stage"] == "quarantine"
    assert (funnel[1]["documents_in"], funnel[1]["dropped"]["documents"], funnel[1]["documents_out"]) == (21, 2, 19)
    stages = [
        (s["stage"], s["documents_in"], s["dropped"]["documents"], s["documents_out"], s["tokens_in"], s["tokens_out"])
        for s in funnel[2:-1]
    ]
    assert stages == EXPECTED_FUNNEL
    assert funnel[-1] == {"stage": "kept", "documents_in": 8, "tokens_in": 1680}
    assert [s["in_manifest"] for s in funnel[2:-1]] == [True] * 7 + [False, False]


def test_funnel_splits_drops_by_reason_and_flags_unknown_tokens(stats):
    by_stage = {s["stage"]: s for s in stats["funnel"]}
    gopher = by_stage["gopher_quality"]["dropped"]
    reasons = {r["reason"]: (r["documents"], r["tokens"]) for r in gopher["reasons"]}
    assert reasons == {"gopher_short_doc": (2, 22), "gopher_stop_words": (1, 40)}
    # Three documents were dropped before token counting: the stages they enter hold them.
    assert by_stage["normalize"]["documents_in_without_tokens"] == 3
    assert by_stage["language"]["documents_in_without_tokens"] == 2
    assert by_stage["language"]["documents_out_without_tokens"] == 0
    assert by_stage["tokens"]["documents_in_without_tokens"] == 0
    rows = {row["stage"]: row for row in funnel_rows(stats)}
    assert rows["normalize"]["tokens_in"] == ">=1,984"
    assert rows["tokens"]["tokens_in"] == 1984


def test_totals_reasons_sources_and_languages(stats):
    assert stats["totals"]["kept"] == {"documents": 8, "tokens": 1680, "chars": 16800}
    assert stats["totals"]["dropped"] == {"documents": 11, "tokens": 304, "documents_without_tokens": 3}
    assert stats["totals"]["quarantined"] == 2
    reasons = {(r["stage"], r["reason"]): (r["documents"], r["tokens"]) for r in stats["drop_reasons"]}
    assert reasons[("exact_dedup", "exact_duplicate")] == (2, 200)
    assert reasons[(NO_STAGE, "legacy_reason")] == (1, 5)
    assert sum(d for d, _ in reasons.values()) == 11
    assert stats["sources"]["web-a"] == {"kept_documents": 3, "kept_tokens": 600, "dropped_documents": 5,
                                         "dropped_tokens": 150, "quarantined": 2}
    assert stats["sources"]["code-a"]["dropped_documents"] == 2
    assert stats["languages"]["fr"] == {"kept_documents": 0, "kept_tokens": 0, "dropped_documents": 2}
    assert stats["languages"]["de"]["kept_tokens"] == 300
    assert stats["languages"]["(none)"]["dropped_documents"] == 1


@pytest.mark.parametrize("domain", ["web", "code"])
def test_domain_quantiles_match_numpy(stats, domain):
    quality = np.array([doc[2] for doc in KEPT[domain]])
    entry = stats["domains"][domain]
    assert entry["documents"] == len(quality)
    assert entry["tokens"] == sum(doc[3] for doc in KEPT[domain])
    expected = np.quantile(quality, [0.1, 0.25, 0.5, 0.75, 0.9])
    got = [entry["quality"][key] for key in ("p10", "p25", "p50", "p75", "p90")]
    assert got == pytest.approx(expected.tolist(), abs=1e-12)
    assert entry["quality"]["mean"] == pytest.approx(quality.mean(), abs=1e-12)
    edges = np.array(entry["histogram"]["edges"])
    assert edges.tolist() == [i / 20 for i in range(21)]
    counts, _ = np.histogram(quality, bins=edges)
    assert entry["histogram"]["counts"] == counts.tolist()


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_report_files_are_real_pngs_and_a_summary(out, stats):
    directory = out / "report"
    for name in ("funnel.png", "quality_web.png", "quality_code.png"):
        width, height = png_size(directory / name)
        assert width >= 400 and height >= 250
        assert (directory / name).stat().st_size > 5_000
        pixels = image.imread(directory / name)  # decodes, so a truncated file fails here
        assert pixels.shape[:2] == (height, width) and pixels.std() > 0.01
    summary = (directory / "index.md").read_text()
    assert "| gopher_quality | 16 | 3 | 13 | 1,984 | 62 | 1,922 |" in summary
    assert "quality_web.png" in summary


def test_rewriting_a_report_removes_domains_that_are_gone(out, stats):
    (out / "report" / "quality_math.png").write_bytes(b"old")
    write_report(out, read_manifest(out))
    assert not (out / "report" / "quality_math.png").exists()


def break_kept(manifest: Manifest) -> None:
    manifest.counts.kept += 1
    manifest.counts.input += 1


def break_dropped(manifest: Manifest) -> None:
    manifest.counts.dropped["ghost_filter"] = 1
    manifest.counts.input += 1


def swap_reasons(manifest: Manifest) -> None:
    # Totals still close; only the per-reason split is wrong.
    manifest.counts.dropped["low_quality"] += 1
    manifest.counts.dropped["exact_duplicate"] -= 1


def break_domain_tokens(manifest: Manifest) -> None:
    manifest.domains["code"].tokens += 1


@pytest.mark.parametrize(
    ("damage", "message"),
    [(break_kept, "counts.kept"), (break_dropped, "dropped"), (swap_reasons, "reason 'exact_duplicate'"),
     (break_domain_tokens, "domain=code tokens")],
)
def test_a_run_whose_files_disagree_with_its_manifest_is_refused(tmp_path, damage, message):
    manifest = build_manifest()
    damage(manifest)
    out = write_out(tmp_path / "run", manifest)
    with pytest.raises(ReportError, match=message):
        write_report(out, read_manifest(out))
    assert not (out / "report" / "stats.json").exists()


def test_missing_quarantine_file_breaks_the_arithmetic(out):
    (out / "quarantine" / "part-00000.parquet").unlink()
    with pytest.raises(ReportError, match="quarantine"):
        write_report(out, read_manifest(out))


def test_old_manifest_without_stages_still_loads_and_reports(tmp_path):
    out = write_out(tmp_path / "run", build_manifest(stages=[]))
    data = json.loads((out / "manifest.json").read_text())
    del data["stages"]
    (out / "manifest.json").write_text(json.dumps(data))
    manifest = read_manifest(out)
    assert manifest.stages == []
    stats = load_stats(write_report(out, manifest))
    assert "manifest lists no stages" in stats["stage_order"]
    steps = stats["funnel"][2:-1]
    assert [s["stage"] for s in steps] == sorted({row[0] or NO_STAGE for row in DROPPED})
    assert steps[0]["documents_in"] == 19 and steps[-1]["documents_out"] == 8


def test_a_run_that_kept_nothing_still_reports(tmp_path):
    out = tmp_path / "run"
    (out / "dropped").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(dropped_rows()[:3], DROPPED_SCHEMA), out / "dropped" / "part-00000.parquet")
    manifest = Manifest(
        run_id="r0", config_hash="h", started_at="t0", finished_at="t1", tokenizer="t", inputs=[],
        counts=Counts(input=3, kept=0, dropped={"empty_text": 1, "lang_not_allowed": 2}), domains={},
        shards=[], stages=STAGES,
    )
    write_manifest(out, manifest)
    stats = load_stats(write_report(out, manifest))
    assert stats["funnel"][-1] == {"stage": "kept", "documents_in": 0, "tokens_in": 0}
    assert stats["domains"] == {}
    png_size(out / "report" / "funnel.png")


def test_catalog_shows_documents_tokens_and_quality_quantiles(out):
    table = {row["domain"]: row for row in domain_table(out)}
    assert sorted(table) == ["code", "web"]
    for domain, docs in KEPT.items():
        quality = np.array([doc[2] for doc in docs])
        row = table[domain]
        assert (row["documents"], row["tokens"]) == (len(docs), sum(doc[3] for doc in docs))
        p10, p50, p90 = np.quantile(quality, [0.1, 0.5, 0.9])
        assert (row["quality_p10"], row["quality_p50"], row["quality_p90"]) == pytest.approx((p10, p50, p90), abs=1e-12)
        assert row["quality_mean"] == pytest.approx(quality.mean(), abs=1e-12)
    assert table["web"]["long_docs"] == 2 and table["web"]["sources"] == 2


def test_cli_catalog_and_report(out, capsys):
    assert main(["catalog", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "quality_p50" in printed and "quality_p90" in printed
    web = next(line for line in printed.splitlines() if line.startswith("web"))
    assert "1,500" in web and "0.500" in web  # tokens and the median
    (out / "report" / "stats.json").unlink(missing_ok=True)
    assert main(["report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "exact_dedup" in printed and (out / "report" / "stats.json").exists()


def test_cli_report_on_a_broken_run_is_one_line(tmp_path, capsys):
    manifest = build_manifest()
    break_kept(manifest)
    out = write_out(tmp_path / "run", manifest)
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "counts.kept" in err
