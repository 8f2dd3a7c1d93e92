"""Reference implementation of the RelaysController platform contract (openapi.yaml)."""

CONTRACT_VERSION = "1.0.0"
