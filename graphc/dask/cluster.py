"""Which Dask client a call runs on, and the embedded default cluster."""

from __future__ import annotations

import contextlib
import os

import distributed


@contextlib.contextmanager
def session(client=None, n_workers=None):
    """Yield the client to run on: `client` if given, else Dask's current default
    client (the Dask convention), else an embedded ``LocalCluster`` started for the
    call and closed after it: one single-threaded worker *process* per core (unless
    `n_workers` says otherwise), so that every worker has its own interpreter, Numba
    and BLAS, as workers on other machines would."""
    if client is None:
        try:
            client = distributed.default_client()
        except ValueError:              # no default client: embed a cluster
            client = None
    if client is not None:
        yield client
        return
    n = n_workers or os.cpu_count() or 1
    with distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster, set_as_default=False) as embedded:
        yield embedded


def worker_addresses(client):
    """The addresses of the cluster's workers (sorted, so placement is reproducible)."""
    workers = sorted(client.scheduler_info()["workers"])
    if not workers:
        raise RuntimeError("graphc.dask: the Dask cluster has no workers")
    return workers
