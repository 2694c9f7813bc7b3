from django.apps import AppConfig


class ClustersConfig(AppConfig):
    name = "clusters"
    verbose_name = "Proxmox VE clusters"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import urllib3

        from clusters import checks, wiring  # noqa: F401 - registers checks and signal receivers

        # verify_tls=false is the operator's explicit, recorded choice for a
        # cluster; urllib3 would otherwise warn on every call to it.
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
