"""Async repositories: the only place SQL lives. Callers pass a connection from
``Database.write()`` / ``Database.read()``; only the unit of work commits."""
