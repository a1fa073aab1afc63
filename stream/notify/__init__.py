"""``vigil notify``: problems (and, by choice, single alerts) delivered to Alertmanager, a
signed webhook, PagerDuty and Slack, at least once (docs/notifications.md).

``service.py`` conducts: it consumes, asks each sink's policy, hands notices to one
``delivery.SinkWorker`` per sink, and commits offsets as ``offsets.OffsetTracker`` allows.
``sinks.py`` turns a notice into an HTTP request with the pure payloads of
``stream/core/notifications``; ``alert_silences.py`` tells which single alerts silences cover
(the silences topic followed); ``metrics.py`` declares the metrics; ``main.py`` runs the
process.
"""
