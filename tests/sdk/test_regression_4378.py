"""The official SDK regression scenario 4378 "ssl证书" (spec §6.4), with the Python SDK:
CreateULB → CreateVServer(HTTPS) → CreateSSL ×2 (lenient content) → DescribeSSL ×2 →
BindSSL → UpdateSSLBinding with the legacy ULBId/VServerId names through the generic
signed request → UnbindSSL(new) → DeleteSSL ×2 → DeleteVServer → DeleteULB.

certbind has no VPC service; the scenario's CreateVPC/CreateSubnet ids are stand-ins."""

from harness import SUBNET_ID, VPC_ID, one_ssl, one_ulb, one_vserver, ssl_absent, ulb_gone, vserver_gone


def lenient_create_ssl_params(bundle, name):
    """The scenario's odd shape: leaf + intermediate in UserCert separated by blank lines,
    PrivateKey = "abc", and the real RSA private key in CaCert."""
    return {
        "SSLName": name,
        "UserCert": bundle.cert_pem + "\n\n" + bundle.chain_pem.rstrip("\n"),
        "PrivateKey": "abc",
        "CaCert": bundle.key_pem.rstrip("\n"),
    }


def test_scenario_4378_replace_with_legacy_parameter_names(fresh_api, certs):
    api = fresh_api

    ulb_id = api.call("CreateULB", VPCId=VPC_ID, ULBName="ulb-ssl-test", Tag="Default", SubnetId=SUBNET_ID,
                      InnerMode="No", ChargeType="Dynamic")["ULBId"]
    api.raw_ok("CreateULB")
    assert one_ulb(api, ulb_id)["Name"] == "ulb-ssl-test"

    vs_id = api.call("CreateVServer", VServerName="vserver-test", ULBId=ulb_id, Protocol="HTTPS",
                     PersistenceType="UserDefined", PersistenceInfo="huangchao", Method="Roundrobin",
                     ListenType="RequestProxy", FrontendPort=443, ClientTimeout=60)["VServerId"]
    vs = one_vserver(api, ulb_id, vs_id)
    assert (vs["PersistenceType"], vs["PersistenceInfo"], vs["ClientTimeout"]) == ("UserDefined", "huangchao", 60), vs
    assert vs["SSLSet"] == []

    # Both certificates are long expired RSA leaves with an intermediate, as in the scenario.
    first, second = certs.expired("m.example-4378.test", key_type="rsa"), certs.expired("m.example-4378.test", key_type="rsa")
    ssl_1 = api.call("CreateSSL", **lenient_create_ssl_params(first, "证书-1"))["SSLId"]
    ssl_2 = api.call("CreateSSL", **lenient_create_ssl_params(second, "证书-2"))["SSLId"]
    assert ssl_1 != ssl_2

    item_1, item_2 = one_ssl(api, ssl_1), one_ssl(api, ssl_2)
    assert (item_1["SSLName"], item_2["SSLName"]) == ("证书-1", "证书-2")
    # The leaf (not the intermediate, not "abc") defines the derived fields.
    assert (item_1["NotBefore"], item_1["NotAfter"]) == (first.not_before, first.not_after), item_1
    assert item_1["Domains"] == "m.example-4378.test", item_1

    api.call("BindSSL", VServerId=vs_id, ULBId=ulb_id, SSLId=ssl_1)
    assert [s["SSLId"] for s in one_vserver(api, ulb_id, vs_id)["SSLSet"]] == [ssl_1]
    assert [t["VServerId"] for t in one_ssl(api, ssl_1)["BindedTargetSet"]] == [vs_id]

    # The generic request: the typed SDK call would drop ULBId/VServerId (not in its schema).
    raw = api.invoke("UpdateSSLBinding", VServerId=vs_id, ULBId=ulb_id, OldSSLId=ssl_1, NewSSLId=ssl_2)
    assert (raw["RetCode"], raw["Action"]) == (0, "UpdateSSLBindingResponse"), raw
    assert [s["SSLId"] for s in one_vserver(api, ulb_id, vs_id)["SSLSet"]] == [ssl_2]
    assert one_ssl(api, ssl_1)["BindedTargetSet"] == []
    assert [t["VServerId"] for t in one_ssl(api, ssl_2)["BindedTargetSet"]] == [vs_id]
    relations = one_ssl(api, ssl_2, "DescribeSSLV2")["Relations"]
    assert [(r["LoadBalancerId"], r["ListenerId"]) for r in relations] == [(ulb_id, vs_id)], relations

    # The scenario unbinds SSL 2 next, which only works if the update really bound it.
    api.call("UnbindSSL", VServerId=vs_id, ULBId=ulb_id, SSLId=ssl_2)
    assert one_vserver(api, ulb_id, vs_id)["SSLSet"] == []
    assert one_ssl(api, ssl_2)["BindedTargetSet"] == []

    api.call("DeleteSSL", SSLId=ssl_1)
    ssl_absent(api, ssl_1)
    api.call("DeleteSSL", SSLId=ssl_2)
    ssl_absent(api, ssl_2)

    api.call("DeleteVServer", VServerId=vs_id, ULBId=ulb_id)
    vserver_gone(api, ulb_id, vs_id)
    api.call("DeleteULB", ULBId=ulb_id)
    ulb_gone(api, ulb_id)


def test_legacy_names_scope_to_the_named_vserver(world, certs):
    """ULBId/VServerId are aliases of LoadBalancerId/ListenerId: with both, only that
    VServer changes; a sibling bound to the same certificate keeps it."""
    old = world.ssl(certs.chained("legacy.example.test"), "old")
    new = world.ssl(certs.chained("legacy.example.test"), "new")
    ulb = world.clb("legacy")
    target, sibling = world.vserver(ulb, "target"), world.vserver(ulb, "sibling")
    world.bind(ulb, target, old)
    world.bind(ulb, sibling, old)

    raw = world.api.invoke("UpdateSSLBinding", ULBId=ulb, VServerId=target, OldSSLId=old, NewSSLId=new)
    assert raw["RetCode"] == 0, raw
    world.expect_replaced(old, new, lb=ulb, listener=target)
    world.verify()

    # VServerId alone = ListenerId alone.
    raw = world.api.invoke("UpdateSSLBinding", VServerId=sibling, OldSSLId=old, NewSSLId=new)
    assert raw["RetCode"] == 0, raw
    world.expect_replaced(old, new, listener=sibling)
    world.verify()
