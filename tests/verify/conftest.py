"""Fixtures for the verifier's tests: keys on disk and journals made by the real writer."""

import pytest

from dztest import journal_forge as forge
from dztest import journal_samples as samples


@pytest.fixture(scope="session")
def device_key():
    return forge.new_key()


@pytest.fixture(scope="session")
def other_key():
    return forge.new_key()


@pytest.fixture(scope="session")
def attacker_key():
    return forge.new_key()


@pytest.fixture(scope="session")
def writer_image(tmp_path_factory, device_key):
    """About 150 sales by the writer in a 12-segment ring (not wrapped): bytes."""
    path = str(tmp_path_factory.mktemp("writer") / "a.dzj")
    samples.write_journal(path, device_key, device_id="pos-7", records=150)
    return samples.read(path)


@pytest.fixture(scope="session")
def other_device_image(tmp_path_factory, other_key):
    """The same workload on another device (its own journal id and key)."""
    path = str(tmp_path_factory.mktemp("other") / "b.dzj")
    samples.write_journal(path, other_key, device_id="pos-8", records=150)
    return samples.read(path)


@pytest.fixture
def pub_file(tmp_path, device_key):
    path = str(tmp_path / "device.pub")
    with open(path, "wb") as f:
        f.write(forge.pem_public(device_key))
    return path

