"""One side of the two-process race in the repository contract suite.

Run as ``python -m tests.integration.edit_race_worker <cluster-id> <name>
<start-at>`` with ``DATABASE_URL`` naming the test database: it reads the
cluster, waits until the wall-clock time ``start-at`` (so that both
processes write at once), saves a rename based on the version it read and
prints ``won`` or ``stale``.
"""

from __future__ import annotations

import os
import sys
import time
import uuid

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")


def main(cluster_id: str, name: str, start_at: float) -> str:
    import django

    django.setup()
    from clusters.domain import StaleCluster
    from clusters.encryption import CredentialCipher
    from clusters.repositories.database import DjangoUnitOfWork
    from tests.cluster_samples import NOW

    cipher = CredentialCipher.from_settings()
    with DjangoUnitOfWork(cipher=cipher) as uow:
        read = uow.clusters.find_by_id(uuid.UUID(cluster_id))
    time.sleep(max(0.0, start_at - time.time()))
    try:
        with DjangoUnitOfWork(cipher=cipher) as uow:
            uow.clusters.update(read.reconfigured(at=NOW, name=name))
            uow.commit()
    except StaleCluster:
        return "stale"
    return "won"


if __name__ == "__main__":
    print(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
