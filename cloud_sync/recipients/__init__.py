"""Recipients of a person's data beyond fleets: one registry of recipients with a role, and
one module per role for what the registry makes for it (DESIGN.md, Consent and recipients).

* ``directory``  — every recipient (fleets too) and its role; ``recipient add`` credentials;
* ``signing``    — the registry's own key: every message below is a JWS under it;
* ``base``       — the ``RoleSender`` protocol the role modules keep;
* ``guardian``   — dangerous events as they happen, a daily digest (Japan days);
* ``insurer``    — the portable score, a monthly summary (never events, times, positions);
* ``responder``  — sealed emergency profiles and the crash notice, sent from the early hook;
* ``watch``      — the reference receivers (``msp-registry guardian|responder|insurer watch``).

Fleets keep their own path (``cloud_sync.republish``, ``cloud_sync.fleets``).
"""
