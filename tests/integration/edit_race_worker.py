"""One side of the two-process race in the repository contract suite.

Run as ``python -m tests.integration.edit_race_worker <cluster-id> <name>``
with ``DATABASE_URL`` naming the test database: it reads the cluster, prints
``ready``, waits for a line on stdin (the test sends it once both workers
have read, so that both write from the same version, however long either
took to start), saves a rename based on the version it read and prints
``won`` or ``stale``.
"""

from __future__ import annotations

import os
import sys
import uuid

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")


def main(cluster_id: str, name: str) -> str:
    import django

    django.setup()
    from clusters.domain import StaleCluster
    from clusters.encryption import CredentialCipher
    from clusters.repositories.database import DjangoUnitOfWork
    from tests.cluster_samples import NOW

    cipher = CredentialCipher.from_settings()
    with DjangoUnitOfWork(cipher=cipher) as uow:
        read = uow.clusters.find_by_id(uuid.UUID(cluster_id))
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        with DjangoUnitOfWork(cipher=cipher) as uow:
            uow.clusters.update(read.reconfigured(at=NOW, name=name))
            uow.commit()
    except StaleCluster:
        return "stale"
    return "won"


if __name__ == "__main__":
    print(main(sys.argv[1], sys.argv[2]))
