"""The dashboard: server-rendered pages over the same use cases the REST API
calls (docs/dashboard.md)."""
