"""HQ analytics: metric queries over the ledger and its rollups, and the statistical models behind them.

Definitions are in docs/metrics.md."""
