"""ucloud-cli's `ulb` and `ulb ssl` commands (spec §6.2), replayed with the Python SDK."""

import re

from certs import strip_whitespace
from harness import describe_all_ssl, one_ssl, one_ulb, one_vserver, ssl_absent, ulb_gone, vserver_gone

MD5_HEX = re.compile(r"[0-9a-f]{32}")


def test_cli_ssl_add_list_describe_bind_unbind_delete(fresh_api, certs):
    api = fresh_api

    # `ucloud ulb create` / `ulb list`
    ulb_id = api.call("CreateULB", ULBName="cli-lb", OuterMode="Yes")["ULBId"]
    assert one_ulb(api, ulb_id)["Name"] == "cli-lb"

    # `ucloud ulb ssl add --name a --all-in-one-file bundle.pem` → SSLContent
    bundle_a = certs.chained("cli-a.example.test", key_format="pkcs8")
    ssl_a = api.call("CreateSSL", SSLName="cli-all-in-one", SSLType="Pem", SSLContent=bundle_a.all_in_one)["SSLId"]
    assert one_ssl(api, ssl_a)["SSLName"] == "cli-all-in-one"
    # `ucloud ulb ssl add --name b --site-certificate-file --private-key-file --ca-certificate-file`
    bundle_b = certs.chained("cli-b.example.test", key_type="rsa")
    ssl_b = api.call("CreateSSL", SSLName="cli-separate", SSLType="Pem", UserCert=bundle_b.cert_pem,
                     PrivateKey=bundle_b.key_pem, CaCert=bundle_b.chain_pem)["SSLId"]
    assert one_ssl(api, ssl_b)["SSLName"] == "cli-separate"
    assert ssl_a != ssl_b

    # `ucloud ulb ssl list --limit 100 --offset 0`: SSLName, SSLId, HashValue ("MD5"), CreateTime, BindedTargetSet
    listed = {s["SSLId"]: s for s in api.call("DescribeSSL", Limit=100, Offset=0)["DataSet"]}
    assert set(listed) == {ssl_a, ssl_b}, api.last_raw
    for ssl_id, name in ((ssl_a, "cli-all-in-one"), (ssl_b, "cli-separate")):
        item = listed[ssl_id]
        assert item["SSLName"] == name, item
        assert MD5_HEX.fullmatch(item["HashValue"]), f"HashValue must be 32 lower-case hex chars: {item['HashValue']!r}"
        assert item["CreateTime"] > 0 and item["BindedTargetSet"] == [], item
    assert listed[ssl_a]["HashValue"] != listed[ssl_b]["HashValue"]

    # `ucloud ulb ssl describe --ssl-id X`: SSLType and SSLContent shown.
    described = one_ssl(api, ssl_a)
    assert described["SSLType"] == "Pem"
    # Form A is stored as given (modulo surrounding whitespace).
    assert strip_whitespace(described["SSLContent"]) == strip_whitespace(bundle_a.all_in_one)
    assert described["Domains"] == "cli-a.example.test"
    assert (described["NotBefore"], described["NotAfter"]) == (bundle_a.not_before, bundle_a.not_after)
    described_b = one_ssl(api, ssl_b)
    assert strip_whitespace(described_b["SSLContent"]) == bundle_b.expected_content_stripped()
    # ... and of an id that does not exist: RetCode 0 + empty DataSet ("is not exists").
    ssl_absent(api, "ssl-doesnotexist")

    # `ucloud ulb vserver create --ulb-id U --protocol HTTPS --port 443 --ssl-id S`
    # = CreateVServer, then BindSSL{ULBId, VServerId=<new>, SSLId}.
    vs_id = api.call("CreateVServer", ULBId=ulb_id, Protocol="HTTPS", FrontendPort=443,
                     ListenType="RequestProxy", VServerName="cli-https")["VServerId"]
    assert one_vserver(api, ulb_id, vs_id)["SSLSet"] == []
    api.call("BindSSL", ULBId=ulb_id, VServerId=vs_id, SSLId=ssl_a)
    assert [s["SSLId"] for s in one_vserver(api, ulb_id, vs_id)["SSLSet"]] == [ssl_a]

    # `ucloud ulb ssl list` shows the binding as "vserver/name(ulb/name)".
    targets = one_ssl(api, ssl_a)["BindedTargetSet"]
    assert [(t["VServerId"], t["VServerName"], t["ULBId"], t["ULBName"]) for t in targets] == [
        (vs_id, "cli-https", ulb_id, "cli-lb")]
    assert one_ssl(api, ssl_b)["BindedTargetSet"] == []

    # `ucloud ulb vserver list --ulb-id U` (DescribeVServer without VServerId)
    page = api.call("DescribeVServer", ULBId=ulb_id)
    assert page["TotalCount"] == 1 and [v["VServerId"] for v in page["DataSet"]] == [vs_id], api.last_raw

    # `ucloud ulb ssl unbind` then `ssl bind` the other certificate.
    api.call("UnbindSSL", SSLId=ssl_a, ULBId=ulb_id, VServerId=vs_id)
    assert one_vserver(api, ulb_id, vs_id)["SSLSet"] == []
    assert one_ssl(api, ssl_a)["BindedTargetSet"] == []
    api.call("BindSSL", SSLId=ssl_b, ULBId=ulb_id, VServerId=vs_id)
    assert [s["SSLId"] for s in one_vserver(api, ulb_id, vs_id)["SSLSet"]] == [ssl_b]
    assert [t["VServerId"] for t in one_ssl(api, ssl_b)["BindedTargetSet"]] == [vs_id]

    # `ucloud ulb vserver update --vserver-id ... --name ...`
    api.call("UpdateVServerAttribute", ULBId=ulb_id, VServerId=vs_id, VServerName="cli-https-2")
    assert one_vserver(api, ulb_id, vs_id)["VServerName"] == "cli-https-2"
    assert one_ssl(api, ssl_b)["BindedTargetSet"][0]["VServerName"] == "cli-https-2"

    # `ucloud ulb ssl delete --ssl-id A` (unbound) succeeds.
    api.call("DeleteSSL", SSLId=ssl_a)
    ssl_absent(api, ssl_a)
    assert [s["SSLId"] for s in describe_all_ssl(api)] == [ssl_b]

    # `ucloud ulb vserver delete`, `ucloud ulb delete`; then the certificate is free again.
    api.call("DeleteVServer", ULBId=ulb_id, VServerId=vs_id)
    vserver_gone(api, ulb_id, vs_id)
    assert one_ssl(api, ssl_b)["BindedTargetSet"] == [], "[REC §4.2] deleting a VServer drops its binding"
    api.call("DeleteULB", ULBId=ulb_id)
    ulb_gone(api, ulb_id)
    api.call("DeleteSSL", SSLId=ssl_b)
    assert describe_all_ssl(api) == []


def test_cli_ssl_delete_several_ids(fresh_api, certs):
    """`ucloud ulb ssl delete --ssl-id A --ssl-id B --ssl-id C` = one DeleteSSL per id."""
    api = fresh_api
    ids = [api.call("CreateSSL", **certs.self_signed(f"del{i}.example.test").create_ssl_params(f"del-{i}"))["SSLId"]
           for i in range(3)]
    assert [s["SSLId"] for s in describe_all_ssl(api)] == ids
    for i, ssl_id in enumerate(ids):
        api.call("DeleteSSL", SSLId=ssl_id)
        ssl_absent(api, ssl_id)
        assert [s["SSLId"] for s in describe_all_ssl(api)] == ids[i + 1:]


def test_cli_rename_certificate(fresh_api, certs):
    """UpdateSSLAttribute renames; the name is echoed by every read path."""
    api = fresh_api
    ssl_id = api.call("CreateSSL", **certs.wildcard("wild.example.test").create_ssl_params("before"))["SSLId"]
    item = one_ssl(api, ssl_id)
    assert item["Domains"] == "*.wild.example.test", item
    api.call("UpdateSSLAttribute", SSLId=ssl_id, SSLName="证书-after a+b&c=d")
    assert one_ssl(api, ssl_id)["SSLName"] == "证书-after a+b&c=d"
    v2 = one_ssl(api, ssl_id, "DescribeSSLV2")
    assert v2["SSLName"] == "证书-after a+b&c=d"
    assert "wild.example.test" in v2["DNSNames"] and "*.wild.example.test" in v2["DNSNames"], v2
