"""Our own record of every message of every conversation, kept in Redis for review."""
