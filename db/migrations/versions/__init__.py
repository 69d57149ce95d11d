"""Alembic revisions, oldest first: ``r0001_initial``, ``r0002_audit_and_boards``."""
