"""The fleet PKI: CA, certificates, revocation list."""
