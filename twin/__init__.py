"""The embedded staging twin: Google's control plane and the services' data plane, on loopback."""
