"""Pure computation (ruff bans aiokafka, prometheus_client, structlog, os and pathlib here): the
metric pipeline, its features, incident risk and the log side."""
