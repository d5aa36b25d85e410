"""SQLModel tables, repositories and the SQL unit of work (PostgreSQL and SQLite)."""
