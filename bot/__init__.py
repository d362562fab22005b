"""Kefu: an honest customer-service bot for brand accounts on Chinese social media."""
