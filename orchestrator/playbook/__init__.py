"""Playbooks: the YAML that decides what happens to an alert, loaded, validated and matched."""
