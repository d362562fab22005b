"""Customer satisfaction: one 1–5 rating per conversation, asked once."""
