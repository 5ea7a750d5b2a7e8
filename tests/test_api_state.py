"""The API's DuckDB state on its own: migrations, immutable versions, thread safety."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import duckdb
import pytest

from api.state import MIGRATIONS, Store, SchemaTooNewError, migrate
from mixer.spec import MixtureSpec

SPEC = MixtureSpec.model_validate({
    "name": "anneal",
    "corpus": ["runs/demo/curated"],
    "tokenizer": "runs/demo/tokenizer.json",
    "phases": [{"name": "p", "tokens": 1000, "seq_len": 64,
                "sources": [{"name": "web", "select": {"domain": "web"}, "weight": 1}]}],
})


def test_migrations_run_once_and_record_the_version(tmp_path):
    path = tmp_path / "state.duckdb"
    with Store(path) as store:
        assert store.schema_version == len(MIGRATIONS)
    with Store(path):  # reopening applies nothing twice
        pass
    with duckdb.connect(str(path)) as connection:
        versions = [row[0] for row in connection.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()]
    assert versions == list(range(1, len(MIGRATIONS) + 1))


def test_a_later_migration_applies_to_an_existing_file(tmp_path):
    path = str(tmp_path / "state.duckdb")
    with Store(path) as store:
        store.create_mixture(SPEC)

    def add_label(connection: duckdb.DuckDBPyConnection) -> None:
        connection.execute("ALTER TABLE mixtures ADD COLUMN label VARCHAR")

    with duckdb.connect(path) as connection:
        assert migrate(connection, [*MIGRATIONS, add_label]) == len(MIGRATIONS) + 1
        assert connection.execute("SELECT name, label FROM mixtures").fetchall() == [("anneal", None)]


def test_a_failed_migration_leaves_the_previous_version(tmp_path):
    path = str(tmp_path / "state.duckdb")
    Store(path).close()

    def broken(connection: duckdb.DuckDBPyConnection) -> None:
        connection.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("boom")

    with duckdb.connect(path) as connection:
        with pytest.raises(RuntimeError):
            migrate(connection, [*MIGRATIONS, broken])
        assert connection.execute("SELECT max(version) FROM schema_version").fetchone()[0] == len(MIGRATIONS)
        tables = {row[0] for row in connection.execute("SHOW TABLES").fetchall()}
        assert "half_done" not in tables


def test_a_newer_schema_is_refused(tmp_path):
    path = str(tmp_path / "state.duckdb")
    Store(path).close()
    with duckdb.connect(path) as connection:
        connection.execute("INSERT INTO schema_version VALUES (?)", [len(MIGRATIONS) + 1])
    with pytest.raises(SchemaTooNewError):
        Store(path)


def test_versions_are_immutable_and_numbered_per_name(tmp_path):
    with Store(tmp_path / "state.duckdb") as store:
        first = store.create_mixture(SPEC)
        second = store.create_mixture(SPEC.model_copy(update={"seed": 7}))
        other = store.create_mixture(SPEC.model_copy(update={"name": "general"}))
        assert (first["version"], second["version"], other["version"]) == (1, 2, 1)
        assert store.get_mixture("anneal", 1) == first and store.get_mixture("anneal") == second
        assert store.get_mixture("anneal", 3) is None and store.get_mixture("nope") is None
        items, total = store.list_mixtures(limit=10, offset=0)
        assert total == 2 and [(item["name"], item["version"]) for item in items] == [("anneal", 2), ("general", 1)]
        versions, count = store.mixture_versions("anneal", limit=1, offset=1)
        assert count == 2 and versions == [second]
        # The same spec saved twice is two versions with one digest.
        assert store.create_mixture(SPEC)["sha256"] == first["sha256"]


def test_names_are_parameters_not_sql(tmp_path):
    with Store(tmp_path / "state.duckdb") as store:
        store.create_mixture(SPEC)
        assert store.get_mixture("anneal' OR '1'='1") is None
        assert store.mixture_versions("x'; DROP TABLE mixtures; --")[1] == 0
        assert store.get_mixture("anneal") is not None


def test_concurrent_creates_get_distinct_versions(tmp_path):
    with Store(tmp_path / "state.duckdb") as store:
        with ThreadPoolExecutor(max_workers=8) as pool:
            records = list(pool.map(lambda _: store.create_mixture(SPEC), range(32)))
        assert sorted(record["version"] for record in records) == list(range(1, 33))
        assert store.mixture_versions("anneal", limit=100)[1] == 32


def test_reads_while_writing_see_every_acknowledged_write(tmp_path):
    """Readers on their own cursors, through the read cache, while a writer adds versions: once
    a write has returned, no read misses it (a stale cached read would)."""
    with Store(tmp_path / "state.duckdb") as store:
        store.create_mixture(SPEC)
        acknowledged = [1]
        stale: list[tuple[int, int]] = []

        def write(count: int) -> None:
            for _ in range(count):
                acknowledged.append(store.create_mixture(SPEC)["version"])

        def read(count: int) -> None:
            for _ in range(count):
                floor = acknowledged[-1]  # a version whose write has returned
                seen = store.get_mixture("anneal")["version"]
                listed, total = store.list_mixtures()
                versions, number = store.mixture_versions("anneal")
                if min(seen, listed[0]["version"], number) < floor or total != 1:
                    stale.append((floor, seen))

        with ThreadPoolExecutor(max_workers=6) as pool:
            futures = [pool.submit(write, 40)] + [pool.submit(read, 200) for _ in range(5)]
            for future in futures:
                future.result()
        assert stale == []
        assert store.get_mixture("anneal")["version"] == 41
        assert [record["version"] for record in store.mixture_versions("anneal", limit=100)[0]] == list(range(1, 42))


def test_reads_are_cached_until_a_write(tmp_path):
    with Store(tmp_path / "state.duckdb") as store:
        store.create_mixture(SPEC)
        generation = store.generation
        assert store.get_mixture("anneal") == store.get_mixture("anneal")
        assert store.generation == generation  # reads do not invalidate
        store.execute("INSERT INTO sources VALUES (?, ?, ?)", ["s", "{}", "2024-01-01"])
        assert store.generation == generation + 1
        assert store.query("SELECT name FROM sources") == [("s",)]
        store.execute("DELETE FROM sources WHERE name = ?", ["s"])
        assert store.query("SELECT name FROM sources") == []  # not the cached row


def test_derived_values_are_cached_until_a_write(tmp_path):
    with Store(tmp_path / "state.duckdb") as store:
        calls: list[int] = []

        def names() -> list[str]:
            calls.append(1)
            return [row[0] for row in store.query("SELECT name FROM sources ORDER BY name")]

        assert store.cached(("names",), names) == [] and store.cached(("names",), names) == []
        assert len(calls) == 1  # the second from the cache
        store.execute("INSERT INTO sources VALUES (?, ?, ?)", ["s", "{}", "2024-01-01"])
        assert store.cached(("names",), names) == ["s"] and len(calls) == 2  # the write made it stale
        assert store.cached(("other",), lambda: "x") == "x"  # keys apart

        def write_while_computing() -> str:
            value = store.cached(("names",), names)
            store.execute("DELETE FROM sources WHERE name = ?", ["s"])  # lands during the computation
            return "computed before the delete returned"

        assert store.cached(("racy",), write_while_computing) == "computed before the delete returned"
        # kept under the generation it started from: computed again after the write, never served
        assert store.cached(("racy",), lambda: "fresh") == "fresh"
        assert store.cached(("names",), names) == []


def test_job_records_read_their_progress_fresh_each_time(tmp_path):
    """A job's progress lives in its progress.json, written by the job, not in the state: every
    read of the record reads it again (no Ray needed: the record is inserted by hand)."""
    from api.jobs import Jobs

    with Store(tmp_path / "state.duckdb") as store:
        jobs = Jobs(store, tmp_path / "runs")
        store.execute("INSERT INTO jobs VALUES (?, 'curation', 'running', '{}', 'out', ?, NULL, 1, NULL, NULL)",
                      ["curat-000000000001", "2024-01-01"])
        files = jobs.files("curat-000000000001")
        assert jobs.get("curat-000000000001")["progress"] is None  # none written yet
        files.directory.mkdir(parents=True)
        for documents in (10, 20):
            files.progress.write_text(json.dumps({"stage": "stage", "message": "m", "documents": documents}))
            assert jobs.get("curat-000000000001")["progress"]["documents"] == documents
            assert jobs.list("curation", None, 50, 0)[0][0]["progress"]["documents"] == documents
        files.progress.write_text("{half")
        assert jobs.get("curat-000000000001")["progress"] is None  # as JobFiles.read_json has it
        assert files.read_json(files.progress) is None


def test_derived_values_are_bounded_in_bytes(tmp_path, monkeypatch):
    import api.state

    monkeypatch.setattr(api.state, "DERIVED_CACHE_BYTES", 1000)
    with Store(tmp_path / "state.duckdb") as store:
        for number in range(5):
            assert store.cached(("page", number), lambda: b"x" * 400) == b"x" * 400
            assert store._cached_bytes <= 1000  # two pages at most, then it starts over
        assert len(store._cached) == 1 and store._cached_bytes == 400
        calls: list[int] = []
        store.cached(("page", 4), lambda: calls.append(1) or b"y")
        assert calls == []  # the last page is still kept
