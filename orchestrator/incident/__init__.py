"""Incidents: grouping alerts into incidents and the pure engine that decides what happens next."""
