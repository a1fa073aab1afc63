"""Offline work on recorded events: replay, evaluation and figures."""
