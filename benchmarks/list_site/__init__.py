"""The service as bench_list_endpoint.py serves it: the project's own
settings and URLs, plus one bare DRF view returning prebuilt bodies, in the
same gunicorn processes, so the two are measured side by side."""
