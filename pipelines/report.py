"""The curation report: ``OUT/report/`` with ``stats.json``, ``funnel.png``, one
``quality_<domain>.png`` per domain and an ``index.md`` summary.

Every number comes from DuckDB queries over the run's Parquet (shards, dropped set,
quarantine), aggregated in the database rather than loaded into memory, and is checked against
the manifest before anything is written: a report that disagrees with its run is an error,
never a figure.

The funnel: input documents; quarantine (unparseable records and id collisions) taken out
first; then every stage in the manifest's order, with the documents and tokens entering it,
those it dropped (by reason) and those leaving it; then the kept shards. A document reaches a
stage when it was kept or dropped at that stage or a later one, so the tokens entering a stage
are the kept tokens plus the tokens of documents dropped there or later. Documents dropped
before token counting carry no count (``n_tokens`` null, or 0 for non-empty text): they add
nothing to the token sums, and each funnel row says how many such documents it holds, so a
reader knows when a token figure is a lower bound.

matplotlib draws the figures through its object API (``Figure``), not pyplot, so a report
never touches a global backend or leaks figures in a long-running service.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, MaxNLocator

from corpus.catalog import create_view, domain_rows
from corpus.files import write_text_atomic
from corpus.manifest import InvariantError, Manifest, check_invariant
from corpus.schema import DROPPED_SCHEMA, QUARANTINE_SCHEMA, SHARD_SCHEMA, shard_glob
from filters.decontam import ITEM_SCORE_PREFIX

REPORT_QUANTILES: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9)
HISTOGRAM_BINS = 20
NO_STAGE = "(no stage)"  # dropped rows whose writer did not record a stage
NO_VALUE = "(none)"  # a null source or language in a breakdown

# A dropped row's token count is unknown when it is null, or 0 for text that has characters
# (the row was dropped before the token-counting stage filled it in).
_UNKNOWN_TOKENS = "(n_tokens IS NULL OR (n_tokens = 0 AND coalesce(n_chars, 0) > 0))"


class ReportError(InvariantError):
    """The run's files and its manifest disagree, so no funnel drawn from them would close."""


def report_dir(out: str | Path) -> Path:
    return Path(out) / "report"


def write_report(out: Path, manifest: Manifest) -> Path:
    """Check that ``out`` closes against ``manifest``, then write ``out/report/``; returns it."""
    out = Path(out)
    stats = build_stats(out, manifest)
    directory = report_dir(out)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("quality_*.png"):  # domains of an earlier run of this OUT
        stale.unlink()
    write_text_atomic(directory / "stats.json", json.dumps(stats, indent=2) + "\n")
    draw_funnel(stats["funnel"], directory / "funnel.png")
    for domain, entry in stats["domains"].items():
        draw_quality(domain, entry, directory / f"quality_{safe_name(domain)}.png")
    write_text_atomic(directory / "index.md", render_markdown(stats))
    return directory


def load_stats(directory: str | Path) -> dict[str, Any]:
    """The ``stats.json`` of a report directory written by :func:`write_report`."""
    return json.loads((Path(directory) / "stats.json").read_text())


# --- queries -----------------------------------------------------------------------------


def open_run(out: Path) -> duckdb.DuckDBPyConnection:
    """DuckDB views ``docs``, ``dropped`` and ``quarantine`` over a run; empty when a set has
    no files (a run that kept nothing is still reportable)."""
    connection = duckdb.connect()
    create_view(connection, "docs", shard_glob(out), SHARD_SCHEMA)
    create_view(connection, "dropped", str(out / "dropped" / "*.parquet"), DROPPED_SCHEMA)
    create_view(connection, "quarantine", str(out / "quarantine" / "*.parquet"), QUARANTINE_SCHEMA)
    return connection


def query_drops(connection: duckdb.DuckDBPyConnection) -> list[dict]:
    """Dropped documents grouped by (stage, reason): documents, tokens, unknown-token documents."""
    rows = connection.execute(
        f"""
        SELECT coalesce(stage, ?) AS stage, reason, count(*),
               coalesce(sum(n_tokens), 0),
               count(*) FILTER (WHERE {_UNKNOWN_TOKENS})
        FROM dropped GROUP BY ALL ORDER BY count(*) DESC, stage, reason
        """,
        [NO_STAGE],
    ).fetchall()
    names = ["stage", "reason", "documents", "tokens", "documents_without_tokens"]
    return [_ints(dict(zip(names, row))) for row in rows]


def query_kept(connection: duckdb.DuckDBPyConnection) -> dict[str, int]:
    documents, tokens, chars = connection.execute(
        "SELECT count(*), coalesce(sum(n_tokens), 0), coalesce(sum(n_chars), 0) FROM docs"
    ).fetchone()
    return {"documents": documents, "tokens": int(tokens), "chars": int(chars)}


def query_quarantined(connection: duckdb.DuckDBPyConnection) -> int:
    return connection.execute("SELECT count(*) FROM quarantine").fetchone()[0]


def query_histograms(connection: duckdb.DuckDBPyConnection, bins: int = HISTOGRAM_BINS) -> dict[str, list[int]]:
    """Per domain, document counts in ``bins`` bins with edges ``i / bins`` over quality 0..1,
    each bin half-open except the last, which holds 1.0; values outside 0..1 (a contract
    violation) fall in the edge bins."""
    # floor(q * bins) can land one bin off next to an edge (the double just below 0.45 times 20
    # rounds up to 9.0), so correct it against the very edges that stats.json publishes.
    rows = connection.execute(
        """
        WITH guess AS (SELECT domain, quality AS q, floor(quality * $bins) AS b FROM docs)
        SELECT domain,
               greatest(0, least($bins - 1,
                   b - (q < b / $bins)::INTEGER + (q >= (b + 1) / $bins)::INTEGER))::INTEGER AS bin,
               count(*)
        FROM guess GROUP BY ALL
        """,
        {"bins": bins},
    ).fetchall()
    counts: dict[str, list[int]] = {}
    for domain, index, n in rows:
        counts.setdefault(domain, [0] * bins)[index] = n
    return counts


def query_sources(connection: duckdb.DuckDBPyConnection) -> dict[str, dict[str, int]]:
    """Per source: kept documents and tokens, dropped documents and tokens, quarantined."""
    rows = connection.execute(
        """
        WITH kept AS (SELECT source, count(*) AS d, sum(n_tokens) AS t FROM docs GROUP BY source),
             lost AS (SELECT source, count(*) AS d, sum(n_tokens) AS t FROM dropped GROUP BY source),
             bad AS (SELECT source, count(*) AS d FROM quarantine GROUP BY source)
        SELECT coalesce(kept.source, lost.source, bad.source) AS source,
               coalesce(kept.d, 0), coalesce(kept.t, 0), coalesce(lost.d, 0), coalesce(lost.t, 0),
               coalesce(bad.d, 0)
        FROM kept FULL JOIN lost ON kept.source = lost.source
                  FULL JOIN bad ON coalesce(kept.source, lost.source) = bad.source
        ORDER BY source
        """
    ).fetchall()
    names = ["kept_documents", "kept_tokens", "dropped_documents", "dropped_tokens", "quarantined"]
    return {source or NO_VALUE: _ints(dict(zip(names, values))) for source, *values in rows}


def query_languages(connection: duckdb.DuckDBPyConnection) -> dict[str, dict[str, int]]:
    """Per language: kept documents and tokens, dropped documents."""
    rows = connection.execute(
        """
        WITH kept AS (SELECT lang, count(*) AS d, sum(n_tokens) AS t FROM docs GROUP BY lang),
             lost AS (SELECT lang, count(*) AS d FROM dropped GROUP BY lang)
        SELECT coalesce(kept.lang, lost.lang) AS lang,
               coalesce(kept.d, 0), coalesce(kept.t, 0), coalesce(lost.d, 0)
        FROM kept FULL JOIN lost ON kept.lang IS NOT DISTINCT FROM lost.lang
        ORDER BY lang
        """
    ).fetchall()
    names = ["kept_documents", "kept_tokens", "dropped_documents"]
    return {lang or NO_VALUE: _ints(dict(zip(names, values))) for lang, *values in rows}


def query_contamination(connection: duckdb.DuckDBPyConnection) -> dict[str, dict[str, int]]:
    """Per evaluation set, per item: the dropped documents that named it in a
    ``contaminated:<set>:<item>`` score (filters/decontam.py), most-hit items first."""
    rows = connection.execute(
        """
        SELECT key, count(*) FROM (SELECT unnest(map_keys(scores)) AS key FROM dropped)
        WHERE starts_with(key, ?) GROUP BY key ORDER BY count(*) DESC, key
        """,
        [ITEM_SCORE_PREFIX],
    ).fetchall()
    hits: dict[str, dict[str, int]] = {}
    for key, documents in rows:
        eval_set, item = key.removeprefix(ITEM_SCORE_PREFIX).split(":", 1)  # set names hold no ':'
        hits.setdefault(eval_set, {})[item] = int(documents)
    return dict(sorted(hits.items()))


def _ints(record: dict[str, Any]) -> dict[str, Any]:
    """DuckDB sums of BIGINT come back as HUGEINT; make every count a plain int for JSON."""
    return {key: int(value) if isinstance(value, int) else value for key, value in record.items()}


# --- checks ------------------------------------------------------------------------------


def check_closure(
    manifest: Manifest, kept: dict[str, int], drops: list[dict], quarantined: int,
    domains: list[dict],
) -> None:
    """Raise :class:`ReportError` unless the files account for every input document exactly
    as the manifest does: kept + dropped + quarantined == input, and each term matches."""
    counts = manifest.counts
    try:
        check_invariant(counts)
    except InvariantError as error:
        raise ReportError(f"manifest: {error}") from error
    dropped = sum(drop["documents"] for drop in drops)
    _same("kept documents in shards/", kept["documents"], "manifest counts.kept", counts.kept)
    _same("documents in dropped/", dropped, "manifest sum(counts.dropped)", sum(counts.dropped.values()))
    _same("records in quarantine/", quarantined, "manifest counts.quarantined", counts.quarantined)
    _same("kept + dropped + quarantined in the files", kept["documents"] + dropped + quarantined,
          "manifest counts.input", counts.input)
    by_reason = Counter()
    for drop in drops:
        by_reason[drop["reason"]] += drop["documents"]
    for reason in sorted(set(by_reason) | set(counts.dropped), key=str):
        _same(f"dropped/ rows with reason {reason!r}", by_reason[reason],
              "the manifest's count", counts.dropped.get(reason, 0))
    _check_domains(manifest, domains)


def _check_domains(manifest: Manifest, domains: list[dict]) -> None:
    found = {row["domain"]: row for row in domains}
    for domain in sorted(set(found) | set(manifest.domains)):
        totals = manifest.domains.get(domain)
        row = found.get(domain, {"documents": 0, "tokens": 0})
        _same(f"shards/domain={domain} documents", row["documents"],
              "the manifest's", totals.documents if totals else 0)
        _same(f"shards/domain={domain} tokens", row["tokens"], "the manifest's", totals.tokens if totals else 0)


def _same(what: str, found: int, against: str, expected: int) -> None:
    if found != expected:
        raise ReportError(f"report: {what} = {found:,} but {against} = {expected:,}; the run's files "
                          "and manifest disagree, so the funnel would not close")


# --- the funnel --------------------------------------------------------------------------


def stage_order(manifest_stages: list[str], drops: list[dict]) -> list[str]:
    """The manifest's stages in order, then any stage that dropped documents but is missing
    from it (sorted by name: their true position is unknown), so no count is lost."""
    extra = sorted({drop["stage"] for drop in drops} - set(manifest_stages))
    return list(dict.fromkeys(manifest_stages)) + extra


def build_funnel(manifest: Manifest, kept: dict[str, int], drops: list[dict], quarantined: int) -> list[dict]:
    """Rows: input, quarantine, each stage (in, dropped by reason, out), kept."""
    stages = stage_order(manifest.stages, drops)
    known = set(manifest.stages)
    rows: list[dict] = []
    # Walk backwards: what leaves the last stage is what was kept, and what enters a stage is
    # what leaves it plus what it dropped.
    documents, tokens, unknown = kept["documents"], kept["tokens"], 0
    for stage in reversed(stages):
        here = [drop for drop in drops if drop["stage"] == stage]
        dropped = _sum_drops(here)
        row = {
            "stage": stage,
            "in_manifest": stage in known,
            "documents_in": documents + dropped["documents"],
            "tokens_in": tokens + dropped["tokens"],
            "documents_in_without_tokens": unknown + dropped["documents_without_tokens"],
            "dropped": dropped,
            "documents_out": documents,
            "tokens_out": tokens,
            "documents_out_without_tokens": unknown,
        }
        rows.append(row)
        documents, tokens, unknown = row["documents_in"], row["tokens_in"], row["documents_in_without_tokens"]
    rows.reverse()
    head = [
        {"stage": "input", "documents_out": manifest.counts.input},
        {"stage": "quarantine", "documents_in": manifest.counts.input,
         "dropped": {"documents": quarantined}, "documents_out": manifest.counts.input - quarantined},
    ]
    if documents != manifest.counts.input - quarantined:  # check_closure makes this unreachable
        raise ReportError(f"report: the funnel enters its first stage with {documents:,} documents "
                          f"but input - quarantined = {manifest.counts.input - quarantined:,}")
    tail = [{"stage": "kept", "documents_in": kept["documents"], "tokens_in": kept["tokens"]}]
    return head + rows + tail


def _sum_drops(drops: list[dict]) -> dict[str, Any]:
    return {
        "documents": sum(drop["documents"] for drop in drops),
        "tokens": sum(drop["tokens"] for drop in drops),
        "documents_without_tokens": sum(drop["documents_without_tokens"] for drop in drops),
        "reasons": [{key: drop[key] for key in ("reason", "documents", "tokens", "documents_without_tokens")}
                    for drop in drops],
    }


# --- stats.json --------------------------------------------------------------------------


def build_stats(out: Path, manifest: Manifest) -> dict[str, Any]:
    """Everything the report shows, as one JSON-ready dict; raises :class:`ReportError` when
    the run's files and manifest disagree."""
    connection = open_run(Path(out))
    try:
        kept = query_kept(connection)
        drops = query_drops(connection)
        quarantined = query_quarantined(connection)
        domains = domain_rows(connection, REPORT_QUANTILES)
        check_closure(manifest, kept, drops, quarantined, domains)
        histograms = query_histograms(connection)
        sources = query_sources(connection)
        languages = query_languages(connection)
        contamination = query_contamination(connection)
    finally:
        connection.close()
    return {
        "run_id": manifest.run_id,
        "tokenizer": manifest.tokenizer,
        "finished_at": manifest.finished_at,
        "stage_order": "manifest" if manifest.stages else "dropped set (the manifest lists no stages)",
        "totals": {
            "input": manifest.counts.input,
            "kept": kept,
            "dropped": {key: value for key, value in _sum_drops(drops).items() if key != "reasons"},
            "quarantined": quarantined,
        },
        "funnel": build_funnel(manifest, kept, drops, quarantined),
        "drop_reasons": drops,
        "domains": {row["domain"]: _domain_entry(row, histograms[row["domain"]]) for row in domains},
        "sources": sources,
        "languages": languages,
        "contamination": contamination,
    }


def _domain_entry(row: dict, histogram: list[int]) -> dict[str, Any]:
    quality = {label.removeprefix("quality_"): row[label] for label in row if label.startswith("quality_")}
    return {
        "documents": row["documents"],
        "tokens": row["tokens"],
        "chars": row["chars"],
        "quality": quality,
        "long_docs": row["long_docs"],
        "sources": row["sources"],
        "histogram": {"edges": [i / len(histogram) for i in range(len(histogram) + 1)], "counts": histogram},
    }


# --- text --------------------------------------------------------------------------------


def funnel_rows(stats: dict[str, Any]) -> list[dict]:
    """The funnel as flat rows for a terminal or Markdown table; a token figure that leaves out
    documents without a count is marked ``>=`` (a lower bound)."""
    rows = []
    for step in stats["funnel"]:
        dropped = step.get("dropped", {})
        rows.append({
            "stage": step["stage"],
            "docs_in": step.get("documents_in", ""),
            "dropped": dropped.get("documents", ""),
            "docs_out": step.get("documents_out", ""),
            "tokens_in": _tokens(step, "tokens_in", "documents_in_without_tokens"),
            "tokens_dropped": _tokens(dropped, "tokens", "documents_without_tokens"),
            "tokens_out": _tokens(step, "tokens_out", "documents_out_without_tokens"),
        })
    return rows


def _tokens(step: dict, key: str, unknown_key: str) -> int | str:
    if key not in step:
        return ""
    return f">={step[key]:,}" if step.get(unknown_key) else step[key]


def render_markdown(stats: dict[str, Any]) -> str:
    """``index.md``: the funnel, the drop reasons, the domains and (when a run has any) the
    contaminated evaluation items, as Markdown tables."""
    totals = stats["totals"]
    lines = [
        f"# Curation report — run {stats['run_id']}",
        "",
        f"Input {totals['input']:,} documents: kept {totals['kept']['documents']:,} "
        f"({totals['kept']['tokens']:,} tokens, {stats['tokenizer']}), dropped "
        f"{totals['dropped']['documents']:,}, quarantined {totals['quarantined']:,}.",
        f"Stage order: {stats['stage_order']}. `>=` marks a token total that leaves out documents "
        "dropped before their tokens were counted.",
        "",
        "## Funnel",
        "",
        *_markdown_table(funnel_rows(stats)),
        "",
        "![funnel](funnel.png)",
        "",
        "## Drop reasons",
        "",
        *_markdown_table(stats["drop_reasons"]),
        "",
        "## Domains (kept)",
        "",
        *_markdown_table([_domain_line(domain, entry) for domain, entry in stats["domains"].items()]),
        "",
    ]
    lines += [f"![{domain}](quality_{safe_name(domain)}.png)" for domain in stats["domains"]]
    if stats.get("contamination"):  # only runs with evaluation sets can have hits
        lines += ["", "## Contamination (evaluation items found in dropped documents)", "",
                  *_markdown_table([{"set": name, "item": item, "documents": documents}
                                    for name, items in stats["contamination"].items()
                                    for item, documents in items.items()])]
    return "\n".join(lines) + "\n"


def _domain_line(domain: str, entry: dict) -> dict:
    quality = {f"q_{key}": f"{value:.3f}" for key, value in entry["quality"].items()}
    return {"domain": domain, "documents": entry["documents"], "tokens": entry["tokens"],
            "chars": entry["chars"], **quality}


def _markdown_table(rows: list[dict]) -> list[str]:
    if not rows:
        return ["(none)"]
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_md_cell(row.get(column)) for column in columns) + " |")
    return lines


def _md_cell(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value).replace("|", "\\|")


def safe_name(domain: str) -> str:
    """A domain as a file-name fragment (domains are a fixed set, but a file name is no place
    to trust that)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", domain) or "_"


# --- figures -----------------------------------------------------------------------------


def draw_funnel(funnel: list[dict], path: Path) -> None:
    """Two panels, documents and tokens entering each stage, with each stage's drops."""
    steps = [step for step in funnel if "documents_in" in step]
    labels = [step["stage"] for step in steps]
    figure = Figure(figsize=(10, 0.45 * len(steps) + 1.8), layout="constrained")
    left, right = figure.subplots(1, 2, sharey=True)
    _funnel_panel(left, labels, [s["documents_in"] for s in steps],
                  [s.get("dropped", {}).get("documents", 0) for s in steps], "documents",
                  [f"{s['documents_in']:,}" for s in steps])
    # Quarantined records were never tokenised: their row has no token figure at all.
    _funnel_panel(right, labels, [s.get("tokens_in", 0) for s in steps],
                  [s.get("dropped", {}).get("tokens", 0) for s in steps], "tokens (>= : some untokenised)",
                  [_tokens_note(s) for s in steps])
    left.invert_yaxis()
    figure.suptitle("curation funnel: entering each stage (dark) and dropped there (light)")
    figure.savefig(path, dpi=100)


def _tokens_note(step: dict) -> str:
    if "tokens_in" not in step:
        return "n/a"
    return (">=" if step.get("documents_in_without_tokens") else "") + f"{step['tokens_in']:,}"


def _funnel_panel(
    axes: Any, labels: list[str], entering: list[int], dropped: list[int], title: str, notes: list[str]
) -> None:
    positions = range(len(labels))
    axes.barh(positions, entering, color="#4477aa")
    axes.barh(positions, dropped, left=[e - d for e, d in zip(entering, dropped)], color="#ee8866")
    axes.set_yticks(list(positions), labels)
    axes.set_xlim(0, max(entering, default=0) * 1.05 or 1)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.xaxis.set_major_formatter(EngFormatter(sep=""))  # 1.8M, not a 1e6 offset
    axes.set_title(title)
    for position, note, lost in zip(positions, notes, dropped):
        note += f"  (-{lost:,})" if lost else ""
        axes.annotate(note, (0, position), xytext=(3, 0), textcoords="offset points",
                      va="center", fontsize=8,
                      bbox={"facecolor": "white", "alpha": 0.7, "linewidth": 0, "pad": 1})


def draw_quality(domain: str, entry: dict, path: Path) -> None:
    """A histogram of one domain's quality with its p10/p50/p90 marked."""
    edges, counts = entry["histogram"]["edges"], entry["histogram"]["counts"]
    figure = Figure(figsize=(6, 3.5), layout="constrained")
    axes = figure.subplots()
    axes.bar(edges[:-1], counts, width=edges[1] - edges[0], align="edge", color="#4477aa", edgecolor="white")
    for key, style in (("p10", ":"), ("p50", "-"), ("p90", ":")):
        value = entry["quality"][key]
        axes.axvline(value, color="#cc3311", linestyle=style, label=f"{key} {value:.3f}")
    axes.set_xlim(0, 1)
    axes.set_xlabel("quality")
    axes.set_ylabel("documents")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(f"{domain}: {entry['documents']:,} documents, mean quality {entry['quality']['mean']:.3f}")
    axes.legend(fontsize=8)
    figure.savefig(path, dpi=100)
