"""The ground everything stands on: configuration (config), errors, the data model (models) and
database sessions and migrations (db). Imports nothing else of the orchestrator.
"""
