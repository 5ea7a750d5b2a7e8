"""Connecting to Ray: a cluster when RAY_ADDRESS is set, else a local instance."""

from __future__ import annotations

import logging
import os
import sys
import threading

# The API starts Ray from whichever thread needs it first (a launch request, the reconciler):
# two at once would both call ray.init, and the second fails.
_STARTING = threading.Lock()


def ensure_ray(num_cpus: int | None = None, log_to_driver: bool = True) -> None:
    """Initialise Ray once per process, from any thread; later calls reuse the running instance.
    ``log_to_driver``: stream the workers' output into this process, as a command line wants;
    the API's jobs write their own logs, and the streaming cost the server's requests their
    tail latency while a job ran."""
    import ray

    with _STARTING:
        if ray.is_initialized():
            return
        if os.environ.get("RAY_ADDRESS") or threading.current_thread() is threading.main_thread():
            _start_ray(num_cpus, log_to_driver)
        else:
            _start_in_keeper_thread(num_cpus, log_to_driver)


def _start_in_keeper_thread(num_cpus: int | None, log_to_driver: bool) -> None:
    """Start a local Ray from a thread that lives as long as the process. Ray starts its local
    daemons with PR_SET_PDEATHSIG, which Linux fires when the *thread* that forked them exits:
    started from a request thread of the API's pool, the head died when the pool retired it."""
    started, failures = threading.Event(), []

    def keep() -> None:
        try:
            _start_ray(num_cpus, log_to_driver)
        except BaseException as error:  # handed to the caller, which raises it
            failures.append(error)
        finally:
            started.set()
        if not failures:
            threading.Event().wait()  # never set: the thread holds Ray's daemons alive

    threading.Thread(target=keep, name="ray-keeper", daemon=True).start()
    started.wait()
    if failures:
        raise failures[0]


def _start_ray(num_cpus: int | None, log_to_driver: bool) -> None:
    import ray

    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    address = os.environ.get("RAY_ADDRESS")
    kwargs: dict = {"logging_level": logging.WARNING, "log_to_driver": log_to_driver}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, **kwargs)
    configure_ray_data()


def configure_ray_data() -> None:
    """How this process's Ray Data runs: in a driver (``ensure_ray``), and in a job's actor,
    which drives Ray Data too but never calls ``ray.init``."""
    from ray.data import DataContext

    # Ray Data logs every execution plan at INFO; the CLI prints its own progress lines.
    logging.getLogger("ray.data").setLevel(logging.WARNING)

    context = DataContext.get_current()
    # Curation's staging is one operator of coarse tasks (a file each). Ray Data's per-operator
    # resource reservation held CPUs back from it on small clusters: on 2 CPUs the second task
    # started a second late and every task waited ~0.2 s for the next (measured: 13.4 s
    # against 9.7 s for the same 8 files).
    context.op_resource_reservation_enabled = False
    # Ray's own bars help on a terminal; in logs and CI they are noise beside our lines.
    context.enable_progress_bars = sys.stderr.isatty()
