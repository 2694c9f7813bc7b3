"""A Proxmox VE API simulator for trying the registry without a cluster and
for the end-to-end tests: ``python manage.py pve_simulator --scenario healthy``."""
