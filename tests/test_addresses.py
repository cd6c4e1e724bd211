"""A client's address as the limits count it."""
import pytest

from c2c_ami.addresses import client_key


@pytest.mark.parametrize("remote, key", [
    ("192.0.2.7", "192.0.2.7"), ("::ffff:192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"), ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
    ("fe80::1%eth0", "fe80::/64"), (None, "unknown"), ("", "unknown"), ("/run/c2c.sock", "/run/c2c.sock"),
])
def test_an_address_is_counted_as_itself_and_an_ipv6_one_by_its_64(remote, key):
    assert client_key(remote) == key
