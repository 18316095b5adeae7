"""MSP edge agent: reads vehicle telemetry, binds the driver, scores, and syncs signed records."""

__version__ = "0.1.0"
