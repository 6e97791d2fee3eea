"""The points ledger: double-entry, append-only, lots and allocations (design 3-6)."""
