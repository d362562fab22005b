"""Complaints, praise and suggestions, kept for the brand's review."""
