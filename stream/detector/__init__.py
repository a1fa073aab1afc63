"""The detector service: the conductor (:mod:`.detector`), its stages, snapshots, champions,
HTTP API and lifecycle."""
