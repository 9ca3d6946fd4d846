"""Tests of the observability building blocks: metrics, health, logs, dashboard and alert rules."""
