"""The whole Confab fleet as real processes on local Kafka, MongoDB-wire, Redis and clamd."""

from confab_devfleet.fleet import FilesBackend, Fleet, FleetOptions, ServiceProcess

__all__ = ["FilesBackend", "Fleet", "FleetOptions", "ServiceProcess"]
