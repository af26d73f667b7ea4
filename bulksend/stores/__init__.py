"""Where a ledger keeps its rows: one Store per database (SQLite, PostgreSQL); the rules live in bulksend.ledger."""
