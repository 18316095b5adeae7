"""The MSP wire contract shared by gateway and registry: record kinds, signing, topics, tiers."""
