"""Django registration of the simulator app (it has no models; it brings the command)."""

from django.apps import AppConfig


class PveSimulatorConfig(AppConfig):
    name = "pve_simulator"
    verbose_name = "Proxmox VE API simulator"
