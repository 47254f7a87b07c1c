"""Signature, keys and project scoping (spec §2.4, §2.5, §2.7, §3), through the real SDK."""

import os
import stat

import pytest
from ucloud.core.exc import RetCodeException

from harness import Api, describe_all_ssl


def test_credentials_file_is_private(server):
    mode = stat.S_IMODE(os.stat(server.data_dir / "credentials.json").st_mode)
    assert mode == 0o600, f"credentials.json has mode {oct(mode)}, expected 0o600"


def test_signed_describe_ssl_on_empty_project(api):
    resp = api.call("DescribeSSL")
    raw = api.raw_ok("DescribeSSL")
    # Exact JSON types: the Go SDK unmarshals into typed structs (spec §2.5).
    assert type(raw.get("TotalCount")) is int and raw["TotalCount"] == 0, raw
    assert raw.get("DataSet") == [], raw
    assert resp["TotalCount"] == 0 and resp["DataSet"] == []


def test_generic_invoke_is_signed_like_typed_calls(api):
    """`Client.invoke` signs whatever it sends, including parameters no schema knows."""
    raw = api.invoke("DescribeSSL", Limit=5, Offset=0, Zone="cn-bj2-05")
    assert raw["RetCode"] == 0 and raw["DataSet"] == [] and raw["TotalCount"] == 0, raw


def test_wrong_private_key_is_171(api):
    forger = api.with_config("forger", private_key=api.config["private_key"] + "x")
    e = forger.fails(171, "DescribeSSL")
    assert not e.retryable  # common codes stay below 2000 so no SDK retries them


def test_unknown_public_key_is_172(api):
    stranger = api.with_config("stranger", public_key="certbind-no-such-key", private_key="whatever")
    stranger.fails(172, "DescribeSSL")


def test_project_of_another_account_is_292(server, api):
    other = server.create_account("auth-other-project")
    assert other.project_id != api.project_id
    trespasser = api.with_config("trespasser", project_id=other.project_id)
    trespasser.fails(292, "DescribeSSL")
    trespasser.fails(292, "DescribeSSLV2")


def test_unknown_project_is_292(api):
    api.with_config("lost", project_id="org-nosuchproject").fails(292, "DescribeSSL")


def test_second_account_cannot_see_first_accounts_certificates(server, certs, recorder):
    api = Api(server.create_account("auth-first"), recorder, label="first")
    bundle = certs.chained("isolation.example.test")
    ssl_id = api.call("CreateSSL", **bundle.create_ssl_params("isolation"))["SSLId"]
    assert [s["SSLId"] for s in describe_all_ssl(api)].count(ssl_id) == 1

    other = Api(server.create_account("auth-second"), recorder, label="second")
    assert describe_all_ssl(other) == []
    assert describe_all_ssl(other, "DescribeSSLV2") == []
    # Asking for the id directly is "not found", which DescribeSSL spells RetCode 0 + [].
    resp = other.call("DescribeSSL", SSLId=ssl_id)
    assert resp["DataSet"] == [] and other.last_raw["TotalCount"] == 0, other.last_raw
    # Nor can the other account change or delete it.
    other.fails(4079, "DeleteSSL", SSLId=ssl_id)
    other.fails(4079, "UpdateSSLAttribute", SSLId=ssl_id, SSLName="stolen")

    mine = [s for s in describe_all_ssl(api) if s["SSLId"] == ssl_id]
    assert len(mine) == 1 and mine[0]["SSLName"] == "isolation", mine

    api.call("DeleteSSL", SSLId=ssl_id)
    assert ssl_id not in [s["SSLId"] for s in describe_all_ssl(api)]


def test_sub_account_key_sees_its_accounts_project(server, recorder, certs):
    owner_creds = server.create_account("auth-subkey-owner")
    owner = Api(owner_creds, recorder, label="subkey-owner")
    ssl_id = owner.call("CreateSSL", **certs.self_signed("subkey.example.test").create_ssl_params("subkey"))["SSLId"]

    key = server.create_key("auth-subkey-owner", projects=[owner_creds.project_id])
    assert key.public_key != owner_creds.public_key
    sub = Api(key, recorder, label="subkey", project_id=owner_creds.project_id)
    assert [s["SSLId"] for s in describe_all_ssl(sub)] == [ssl_id]

    outsider = server.create_account("auth-subkey-outsider")
    sub.with_config("subkey-elsewhere", project_id=outsider.project_id).fails(292, "DescribeSSL")


def test_missing_project_id_means_default_project(api, certs):
    """[REC §2.4] ProjectId omitted ⇒ the account's default project. The typed SDK call
    refuses to send without it, so this goes through the generic signed request."""
    with pytest.raises(Exception) as refused:
        api.with_config("no-project-typed", project_id=None).call("DescribeSSL")
    assert "ProjectId" in str(refused.value) and not isinstance(refused.value, RetCodeException)

    no_project = api.with_config("no-project", project_id=None)
    raw = no_project.invoke("DescribeSSL", Limit=100)
    assert raw["RetCode"] == 0, raw
    assert raw["TotalCount"] == len(describe_all_ssl(api)), raw
