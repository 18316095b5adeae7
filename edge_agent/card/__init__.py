"""The driver's card: APDUs, reader transports (PC/SC, in-process), the JPKI and licence AP
clients, and a virtual My Number Card that a real pcscd sees through vpcd.

The agent never selects an application that holds or derives from the 12-digit My Number
(``layout.FORBIDDEN_AIDS``); errors are in ``edge_agent.card.errors``.
"""
