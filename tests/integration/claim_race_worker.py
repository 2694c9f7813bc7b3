"""One checker in the two-process claim race of the storage contract suite
(test_check_storage_contract.py).

Run as ``python -m tests.integration.claim_race_worker <start-at>`` with
``DATABASE_URL`` naming the test database: it waits until the wall-clock
time ``start-at`` (so that both processes claim at once), then claims due
clusters three at a time until none is left, printing each id it got.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")


def main(start_at: float) -> list[str]:
    import django

    django.setup()
    from clusters.encryption import CredentialCipher
    from clusters.repositories.database import DjangoUnitOfWork
    from tests.cluster_samples import NOW
    from tests.integration.test_check_storage_contract import LEASE

    cipher = CredentialCipher.from_settings()
    claimed: list[str] = []
    time.sleep(max(0.0, start_at - time.time()))
    while True:
        with DjangoUnitOfWork(cipher=cipher) as uow:
            claims = uow.clusters.claim_due(NOW, limit=3, lease=LEASE)
            uow.commit()
        if not claims:
            return claimed
        claimed += [str(claim.cluster.id) for claim in claims]


if __name__ == "__main__":
    print("\n".join(main(float(sys.argv[1]))))
