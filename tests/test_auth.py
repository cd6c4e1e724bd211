"""Bearer tokens map to tenants; anything else is UNAUTHORIZED with a WWW-Authenticate."""
import hashlib

import pytest

from c2c_ami.api.auth import TokenAuthority
from c2c_ami.config import parse_config
from c2c_ami.errors import Unauthorized

from .test_config import BASE


def authority():
    raw = dict(BASE)
    digest = hashlib.sha256(b"hashed-token-b").hexdigest()
    raw["tenants"] = [dict(BASE["tenants"][0]),
                      dict(BASE["tenants"][0], domain="b", tokens=[f"sha256:{digest}"])]
    return TokenAuthority(parse_config(raw, {}).tenants)


def test_plain_and_hashed_tokens_resolve_their_tenant():
    auth = authority()
    assert auth.authenticate("Bearer dev-token").tenant.domain == "default"
    assert auth.authenticate("bearer hashed-token-b").tenant.domain == "b"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic dev-token",
                                    "Bearer dev-token-x", "Bearer sha256:" + "0" * 64, "dev-token"])
def test_bad_authorization_is_unauthorized(header):
    with pytest.raises(Unauthorized) as info:
        authority().authenticate(header)
    assert info.value.http_status == 401
    assert info.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_token_never_appears_in_repr_of_tenant():
    tenant = authority().authenticate("Bearer dev-token").tenant
    assert "dev-token" not in repr(tenant)
