"""MSP cloud registry: verifies and stores gateway records, keeps the person ↔ vehicle registry."""
