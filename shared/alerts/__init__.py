"""Alerts HQ can trust: rules on the network's metrics, their states, notifications and
backtests (docs/alerts.md)."""
