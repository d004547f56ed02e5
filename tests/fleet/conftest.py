from dztest.broker import fleet_pki, tls_broker  # noqa: F401 (fixtures)
