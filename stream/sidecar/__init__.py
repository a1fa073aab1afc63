"""The sidecar service: batch training, the artifact store, champion announcements, its HTTP API
and metrics."""
