"""Telling people things outside the console: e-mail through the school's SMTP server."""
