"""Action handlers: each delivers orchestrator Actions to one external system (or to a record)."""
