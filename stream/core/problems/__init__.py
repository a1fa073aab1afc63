"""From alerts to problems: correlation by time, topology and labels, and root-cause
suspects (pure; ``vigil correlate`` runs it on ``vigil.alerts``)."""
