"""Plans of stored mixtures, cached in the API process and computed once per distinct input.

A plan is a pure function of the mixture spec, the shards' contents and the tokenizer's
content, so it is cached under a key made of exactly those: the canonical spec (a version's
content, paths as confined), every shard's path, size, mtime and inode, and the tokenizer
file's sha256 (hashed again only when its stat changes). A changed, added or removed shard,
a retrained tokenizer or another mixture version gives another key; nothing is invalidated
by hand. Stat identity is how the cache notices a shard rewritten in place; the tokens
themselves come from :mod:`mixer.counts`, which keys them by content.

Concurrent requests for the same key share one computation (single-flight): the first starts
it on a small executor of its own (so plans neither occupy the request thread pool nor run
50 at a time on 2 cores) and the others wait for its result, a PlanError included. Results
are kept serialised, so a warm request costs a key and a copy of bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from api.state import canonical_spec
from mixer.corpora import all_shard_files
from mixer.counts import DIGESTS
from mixer.spec import MixtureSpec

Compute = Callable[[MixtureSpec], dict[str, Any]]


def plan_key(spec: MixtureSpec) -> str:
    """What a plan of ``spec`` depends on, hashed: raises CorpusError (no shards) and OSError."""
    shards = []
    for path in all_shard_files(spec.corpus):
        stat = os.stat(path)
        shards.append([str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino])
    parts = {"spec": canonical_spec(spec), "shards": shards, "tokenizer_sha256": DIGESTS.sha256(spec.tokenizer)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class PlanCache:
    """Serialised plans by :func:`plan_key`, the last ``max_entries`` kept; one computation per
    key at a time."""

    def __init__(self, compute: Compute, max_entries: int = 256, workers: int = 1) -> None:
        self._compute = compute
        self.max_entries = max_entries
        self._done: OrderedDict[str, bytes] = OrderedDict()
        self._running: dict[str, Future[bytes]] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="plan")
        self.computed = 0  # computations started (tests: 50 identical requests compute once)

    def future(self, spec: MixtureSpec) -> Future[bytes]:
        """The plan of ``spec`` as JSON bytes: done when cached, else the running computation
        for its key, else a new one. Blocks only for the key (stat calls, a hash when the
        tokenizer changed)."""
        key = plan_key(spec)
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                finished: Future[bytes] = Future()
                finished.set_result(self._done[key])
                return finished
            if key in self._running:
                return self._running[key]
            running = self._executor.submit(self._run, spec)
            self._running[key] = running
            self.computed += 1
        running.add_done_callback(lambda done: self._settle(key, done))
        return running

    def get(self, spec: MixtureSpec) -> bytes:
        """Blocking :meth:`future` (for threads and tests)."""
        return self.future(spec).result()

    def _run(self, spec: MixtureSpec) -> bytes:
        return json.dumps(self._compute(spec), separators=(",", ":")).encode()

    def _settle(self, key: str, done: Future[bytes]) -> None:
        """Keep a result (errors are not kept: the next request tries again) and let the next
        request for the key start afresh."""
        with self._lock:
            self._running.pop(key, None)
            if done.exception() is None:
                self._done[key] = done.result()
                while len(self._done) > self.max_entries:
                    self._done.popitem(last=False)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
