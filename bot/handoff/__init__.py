"""Handing a conversation to a person."""
