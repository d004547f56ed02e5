"""A whole PKI in one directory for tests and the demo: CA, broker, devices,
backend, an expired and a foreign device certificate."""

import datetime
import os

from daozhang.host_tools.pki.ca import CA_CERT, create_ca, issue_backend, issue_device, issue_server
from daozhang.host_tools.pki.errors import PkiError
from daozhang.host_tools.pki.ledger import utcnow


class TestPki:
    """Everything a test or the demo needs, in one directory:

    ca/                    the fleet CA
    broker.crt/.key        the broker (127.0.0.1, ::1, localhost)
    <device>.crt/.key      one per device id
    <backend>.crt/.key     the backend identity
    expired-<d0>.crt/.key  a device cert for devices[0] that expired yesterday
    foreign/ca.crt/.key    another CA;  foreign-<d0>.crt/.key: devices[0] by it
    """

    __test__ = False  # not a pytest class

    def __init__(self, directory, devices=("dev-a", "dev-b"), backend="backend"):
        self.directory = directory
        self.devices = list(devices)
        self.backend_name = backend
        self.ca = create_ca(os.path.join(directory, "ca"))
        self.ca_cert = os.path.join(directory, "ca", CA_CERT)
        self.server = issue_server(self.ca, [], os.path.join(directory, "broker"))
        self._identities = {}
        for device_id in self.devices:
            self._identities[device_id] = issue_device(self.ca, device_id,
                                                       os.path.join(directory, device_id))
        self._identities[backend] = issue_backend(self.ca, backend,
                                                  os.path.join(directory, backend))
        now = utcnow()
        first = self.devices[0]
        self.expired = issue_device(self.ca, first, os.path.join(directory, "expired-" + first),
                                    not_before=now - datetime.timedelta(days=30),
                                    not_after=now - datetime.timedelta(days=1))
        self.foreign_ca = create_ca(os.path.join(directory, "foreign"), name="some other CA")
        self.foreign = issue_device(self.foreign_ca, first,
                                    os.path.join(directory, "foreign-" + first))

    def identity(self, name):
        """CertPaths for a device id or the backend name."""
        try:
            return self._identities[name]
        except KeyError:
            raise PkiError("no identity %r in this test PKI (have %s)"
                           % (name, ", ".join(sorted(self._identities))))

    def add_device(self, device_id):
        if device_id not in self._identities:
            self._identities[device_id] = issue_device(self.ca, device_id,
                                                       os.path.join(self.directory, device_id))
        return self._identities[device_id]

    @property
    def backend(self):
        return self._identities[self.backend_name]


def make_test_pki(directory, devices=("dev-a", "dev-b"), backend="backend"):
    return TestPki(directory, devices, backend)
