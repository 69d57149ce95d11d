"""Alembic environment and revisions of the node database (shipped as package data)."""
