"""Probes of the data plane: what a user's client sees (HTTP, WebSocket, TLS)."""
