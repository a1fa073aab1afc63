"""The log side of Vigil (pure): templates, event-time windows, window features, scoring."""
