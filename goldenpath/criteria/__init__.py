"""Criteria: the runbook's success metrics as pure functions from observations to verdicts.

No I/O here. The same functions judge the tests and verify remediation.
"""
