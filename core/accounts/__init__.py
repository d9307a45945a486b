"""Accounts: users and passwords, sign-in throttling, device tokens and web sessions."""
