"""gunicorn hooks for the list benchmark: with the memory backend each
worker fills its own store (the same clusters in every worker)."""

from __future__ import annotations

import os
from typing import Any


def post_worker_init(worker: Any) -> None:
    if os.environ.get("CLUSTER_REPOSITORY") != "memory":
        return
    from benchmarks.list_site.fleet import fleet
    from clusters import wiring
    from clusters.bootstrap import bootstrap
    from clusters.repositories.memory import InMemoryUnitOfWork

    unit_of_work = InMemoryUnitOfWork.factory()
    with unit_of_work() as uow:
        for cluster in fleet(int(os.environ["BENCH_CLUSTERS"])):
            uow.clusters.add(cluster)
        uow.commit()
    wiring.install_services(
        bootstrap(unit_of_work=unit_of_work, proxmox=wiring.proxmox_client_from_settings())
    )
