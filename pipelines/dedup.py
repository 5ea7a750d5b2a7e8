"""Exact deduplication across every source of a run, on Ray Data.

Documents are grouped by the hash of their normalised text (a hash shuffle, so no process
holds the whole corpus); within a group the smallest id survives, so the choice does not
depend on read order, and the others are dropped with reason ``exact_duplicate``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.stages import DROPPED, WORK_SCHEMA

if TYPE_CHECKING:
    import ray.data

EXACT_DUPLICATE = "exact_duplicate"


def mark_exact_duplicates(group: pa.Table) -> pa.Table:
    """``map_groups`` body: one group = every kept document with the same text hash."""
    if group.num_rows == 1:
        return group
    order = pc.sort_indices(group, sort_keys=[("id", "ascending")])
    group = group.take(order)
    cluster = f"exact-{group['text_hash'][0].as_py()[:16]}"
    n = group.num_rows
    status = [group["status"][0].as_py()] + [DROPPED] * (n - 1)
    reason = [None] + [EXACT_DUPLICATE] * (n - 1)
    group = group.set_column(group.schema.get_field_index("status"), "status", pa.array(status))
    group = group.set_column(group.schema.get_field_index("reason"), "reason", pa.array(reason, pa.string()))
    group = group.set_column(
        group.schema.get_field_index("dup_cluster"), "dup_cluster", pa.array([cluster] * n)
    )
    return group.cast(WORK_SCHEMA)


def exact_dedup(kept: "ray.data.Dataset", num_partitions: int) -> "ray.data.Dataset":
    grouped = kept.groupby("text_hash", num_partitions=num_partitions)
    return grouped.map_groups(mark_exact_duplicates, batch_format="pyarrow")
