"""Driver identity: offline certificate checks, PIN entry, the card-signed driver ↔ vehicle
binding, and driver sessions (``session.start`` / ``session.end`` bodies)."""
