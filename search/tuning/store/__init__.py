"""Where studies are kept: storage URLs and their faults, opening a storage (SQLite,
PostgreSQL, or the gRPC proxy's client), connection room. Knows no strategy and no trial loop;
liveness is the storage's (heartbeats), the retry policy a callback handed to it."""
