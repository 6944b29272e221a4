"""Claims: red packets, listen sessions, heartbeat evidence, proof of a full listen, risk rules,
exactly-once grants and the payout outbox.

Time comes from an injectable clock; nothing the client says about time is trusted.
"""
