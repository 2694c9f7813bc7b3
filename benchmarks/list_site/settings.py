"""The production settings, with the benchmark's URLs added."""

from proxmoxer_site.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.list_site.urls"
