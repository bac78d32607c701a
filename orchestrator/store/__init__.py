"""Store: incidents, timeline, outbox, timers, alerts and dead letters, in SQLite or PostgreSQL."""
