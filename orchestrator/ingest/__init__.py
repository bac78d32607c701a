"""Ingest: raw payloads (Kafka, HTTP, files) become normalized Alerts or dead letters."""
