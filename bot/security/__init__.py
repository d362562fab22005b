"""Abuse resistance: who is asking (behind trusted proxies), how often, with what headers."""
