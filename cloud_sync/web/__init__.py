"""``msp-registry web``: the registry's read-only HTTP API and dashboard (docs/web.md).

FastAPI under uvicorn, in the optional extra ``msp-gateway[web]``; nothing here is imported by
the rest of the registry. Modules: ``views`` (what each recipient may see: the fleet copies
``cloud_sync.republish`` would have sent it, its drivers' scores, the operator's gateways),
``exchange_log`` (every answer showing a person's data is logged for that person), ``auth``
(passwords, signed session cookies, HTTP Basic), ``operators`` (operator credentials),
``api`` (JSON under ``/api/v1``, OpenAPI at ``/openapi.json``), ``pages`` (server-rendered
HTML), ``live`` (server-sent events fed by an internal MQTT client), ``app`` (the wiring).
"""
