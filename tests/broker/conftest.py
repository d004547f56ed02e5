from dztest.broker import fleet_pki, plain_broker, tls_broker  # noqa: F401  (fixtures)
