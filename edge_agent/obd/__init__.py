"""OBD-II: PIDs, VIN and DTCs over ISO-TP on CAN or through ELM327 adapters, and simulators.

Modules, in data-path order: ``pids`` and ``diagnostics`` (pure byte layouts), ``transport``
(the interface), ``can_client`` (+ ``isotp_link``) and ``elm327`` (+ ``elm327_text``), the two
transports, ``reader`` (what the agent asks), ``polling`` (rates), ``passive`` (a FrameDecoder
for recorded or sniffed OBD traffic), ``sim_ecu`` and ``sim_elm327`` (simulators).
"""
