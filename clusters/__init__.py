"""The cluster registry app: register, list, inspect and remove Proxmox VE clusters."""
