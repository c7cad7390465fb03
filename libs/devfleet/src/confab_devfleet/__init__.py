"""The whole Confab fleet as real processes on local Kafka, MongoDB-wire and Redis."""

from confab_devfleet.fleet import Fleet, FleetOptions, ServiceProcess

__all__ = ["Fleet", "FleetOptions", "ServiceProcess"]
