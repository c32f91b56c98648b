"""Persistence: SQLModel tables, the engine and unit of work, and the store repositories."""
