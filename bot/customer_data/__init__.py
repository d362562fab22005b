"""Customers' rights over their data: export, erasure, and the audit log of who read what."""
