"""Local fakes of the vendors the orchestrator talks to, served over real HTTP for the tests."""
