"""Remediation: observe → plan → apply → verify → roll back, journaled, with consent rules."""
