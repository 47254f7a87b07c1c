"""The terraform provider's CLB + certificate lifecycle (spec §6.1), replayed call for
call with the Python SDK: ucloud_lb → ucloud_lb_listener{https} → ucloud_lb_ssl →
ucloud_lb_ssl_attachment, then update, import-style reads, and destroy in reverse."""

import time

from harness import (describe_all_ssl, one_ssl, one_ulb, one_vserver, ssl_absent, ulb_gone,
                     vserver_gone)


def test_terraform_lb_ssl_attachment_lifecycle(fresh_api, certs):
    api = fresh_api
    started = int(time.time())

    # ucloud_lb create: CreateULB, then DescribeULB{ULBId} until found, then read.
    ulb_id = api.call("CreateULB", ULBName="tf-lb-acc", Tag="Default", Remark="acc", OuterMode="Yes")["ULBId"]
    assert ulb_id.startswith("ulb-"), api.last_raw
    lb = one_ulb(api, ulb_id)
    assert (lb["Name"], lb["Tag"], lb["Remark"]) == ("tf-lb-acc", "Default", "acc"), lb
    assert lb["ULBType"] == "OuterMode", lb
    assert lb["ListenType"] in ("RequestProxy", "Pending"), lb  # outer CLBs default to RequestProxy
    assert started - 5 <= lb["CreateTime"] <= int(time.time()) + 5, lb
    assert lb["VServerSet"] == [], lb

    # ucloud_lb_listener create: DescribeULB (ListenType), CreateVServer, DescribeVServer.
    vs_id = api.call(
        "CreateVServer", ULBId=ulb_id, Protocol="HTTPS", ListenType="RequestProxy", Method="Roundrobin",
        FrontendPort=443, VServerName="tf-lb-listener-acc", ClientTimeout=60, PersistenceType="None",
    )["VServerId"]
    assert vs_id.startswith("vserver-"), api.last_raw
    vs = one_vserver(api, ulb_id, vs_id)
    assert {k: vs[k] for k in ("VServerName", "Protocol", "ListenType", "FrontendPort", "ClientTimeout",
                                "Method", "PersistenceType")} == {
        "VServerName": "tf-lb-listener-acc", "Protocol": "HTTPS", "ListenType": "RequestProxy",
        "FrontendPort": 443, "ClientTimeout": 60, "Method": "Roundrobin", "PersistenceType": "None"}, vs
    assert vs.get("Status", 0) in (0, 1, 2) and vs["SSLSet"] == [], vs
    assert [v["VServerId"] for v in one_ulb(api, ulb_id)["VServerSet"]] == [vs_id]

    # ucloud_lb_ssl create: CreateSSL{SSLType, PrivateKey, UserCert, CaCert, SSLName}, DescribeSSL{SSLId}.
    bundle = certs.chained("tf.example.test", key_type="rsa")
    ssl_id = api.call("CreateSSL", SSLName="tf-lb-ssl-acc", SSLType="Pem", PrivateKey=bundle.key_pem,
                      UserCert=bundle.cert_pem, CaCert=bundle.chain_pem)["SSLId"]
    assert ssl_id.startswith("ssl-"), api.last_raw
    item = one_ssl(api, ssl_id)
    assert item["SSLName"] == "tf-lb-ssl-acc" and item["SSLType"] == "Pem", item
    assert started - 5 <= item["CreateTime"] <= int(time.time()) + 5, item
    assert (item["NotBefore"], item["NotAfter"]) == (bundle.not_before, bundle.not_after), item
    assert item["Domains"] == "tf.example.test", item
    assert item["BindedTargetSet"] == [], item

    # ucloud_lb_ssl_attachment create: BindSSL, then DescribeSSL until BindedTargetSet has the pair.
    api.call("BindSSL", ULBId=ulb_id, VServerId=vs_id, SSLId=ssl_id)
    api.raw_ok("BindSSL")
    targets = one_ssl(api, ssl_id)["BindedTargetSet"]
    assert targets == [{"ULBId": ulb_id, "ULBName": "tf-lb-acc", "VServerId": vs_id,
                        "VServerName": "tf-lb-listener-acc"}], targets
    assert [s["SSLId"] for s in one_vserver(api, ulb_id, vs_id)["SSLSet"]] == [ssl_id]
    assert [s["SSLId"] for s in one_ulb(api, ulb_id)["VServerSet"][0]["SSLSet"]] == [ssl_id]

    # terraform plan/refresh: read every resource again, including the data source that
    # pages DescribeSSL with Limit=100.
    assert [s["SSLId"] for s in describe_all_ssl(api)] == [ssl_id]

    # ucloud_lb update: UpdateULBAttribute{ULBId, Name, Tag, Remark}.
    api.call("UpdateULBAttribute", ULBId=ulb_id, Name="tf-lb-renamed", Tag="Default", Remark="changed")
    lb = one_ulb(api, ulb_id)
    assert (lb["Name"], lb["Remark"]) == ("tf-lb-renamed", "changed"), lb
    # ucloud_lb_listener update: UpdateVServerAttribute{ULBId, VServerId, ...changed}.
    api.call("UpdateVServerAttribute", ULBId=ulb_id, VServerId=vs_id, VServerName="tf-lb-listener-2",
             ClientTimeout=120)
    vs = one_vserver(api, ulb_id, vs_id)
    assert (vs["VServerName"], vs["ClientTimeout"]) == ("tf-lb-listener-2", 120), vs
    assert [s["SSLId"] for s in vs["SSLSet"]] == [ssl_id], "an attribute update must not drop the certificate"
    assert one_ssl(api, ssl_id)["BindedTargetSet"] == [
        {"ULBId": ulb_id, "ULBName": "tf-lb-renamed", "VServerId": vs_id, "VServerName": "tf-lb-listener-2"}]

    # destroy, in dependency order. Attachment: DescribeSSL (still attached), UnbindSSL, poll.
    api.call("UnbindSSL", SSLId=ssl_id, ULBId=ulb_id, VServerId=vs_id)
    api.raw_ok("UnbindSSL")
    assert one_ssl(api, ssl_id)["BindedTargetSet"] == []
    assert one_vserver(api, ulb_id, vs_id)["SSLSet"] == []

    # ucloud_lb_ssl delete: DeleteSSL, then DescribeSSL{SSLId} must become RetCode 0 + [].
    api.call("DeleteSSL", SSLId=ssl_id)
    api.raw_ok("DeleteSSL")
    ssl_absent(api, ssl_id)

    # ucloud_lb_listener delete: DeleteVServer, then DescribeVServer until not found.
    api.call("DeleteVServer", ULBId=ulb_id, VServerId=vs_id)
    vserver_gone(api, ulb_id, vs_id)
    assert one_ulb(api, ulb_id)["VServerSet"] == []

    # ucloud_lb delete: DeleteULB, then DescribeULB until not found.
    api.call("DeleteULB", ULBId=ulb_id)
    ulb_gone(api, ulb_id)
    assert api.call("DescribeULB", Limit=100, Offset=0)["DataSet"] == []


def test_terraform_import_finds_vserver_by_paging_ulbs(fresh_api):
    """Listener import: DescribeULB{Limit=100, Offset} pages, looking for the VServer."""
    api = fresh_api
    ulbs = [api.call("CreateULB", ULBName=f"tf-lb-{i}", Tag="Default", OuterMode="Yes")["ULBId"] for i in range(3)]
    for ulb_id in ulbs:
        assert one_ulb(api, ulb_id)["ULBId"] == ulb_id
    target = api.call("CreateVServer", ULBId=ulbs[1], Protocol="HTTPS", FrontendPort=443,
                      ListenType="RequestProxy", VServerName="imported")["VServerId"]
    assert one_vserver(api, ulbs[1], target)["VServerName"] == "imported"

    page = api.call("DescribeULB", Limit=100, Offset=0)
    assert page["TotalCount"] == 3 and sorted(u["ULBId"] for u in page["DataSet"]) == sorted(ulbs), api.last_raw
    owners = [u["ULBId"] for u in page["DataSet"] for v in u.get("VServerSet") or [] if v["VServerId"] == target]
    assert owners == [ulbs[1]]

    # Short pages with a correct TotalCount.
    first = api.call("DescribeULB", Limit=2, Offset=0)
    second = api.call("DescribeULB", Limit=2, Offset=2)
    assert (first["TotalCount"], second["TotalCount"]) == (3, 3)
    assert len(first["DataSet"]) == 2 and len(second["DataSet"]) == 1
    assert sorted(u["ULBId"] for u in first["DataSet"] + second["DataSet"]) == sorted(ulbs)


def test_terraform_ssls_data_source_pages_describe_ssl(fresh_api, certs):
    """data.ucloud_lb_ssls: DescribeSSL{Limit, Offset} until a short page; TotalCount is
    the total, not the page size; creation order is stable."""
    api = fresh_api
    bundle = certs.self_signed("pages.example.test")
    created = []
    for i in range(5):
        created.append(api.call("CreateSSL", **bundle.create_ssl_params(f"tf-lb-ssl-{i}"))["SSLId"])
        assert one_ssl(api, created[-1])["SSLName"] == f"tf-lb-ssl-{i}"
    assert len(set(created)) == 5, "duplicate content is allowed and gets distinct ids"

    seen = []
    for offset in (0, 2, 4):
        page = api.call("DescribeSSL", Limit=2, Offset=offset)
        assert page["TotalCount"] == 5, api.last_raw
        seen += [s["SSLId"] for s in page["DataSet"]]
    assert seen == created, "pages must follow creation order and not repeat or skip"
    assert api.call("DescribeSSL", Limit=2, Offset=6)["DataSet"] == []
    # Default page size is 20 per the docs; 5 fit.
    assert [s["SSLId"] for s in api.call("DescribeSSL")["DataSet"]] == created


def test_terraform_lb_read_stubs_unet_describe_firewall(fresh_api):
    """ucloud_lb read also asks UNet DescribeFirewall{ResourceId, ResourceType=ulb}; the
    spec (§6.1, §7.12) requires a stub answering RetCode 0 with an empty DataSet."""
    api = fresh_api
    ulb_id = api.call("CreateULB", ULBName="tf-lb-fw", Tag="Default", OuterMode="Yes")["ULBId"]
    assert one_ulb(api, ulb_id)["Name"] == "tf-lb-fw"
    resp = api.unet("DescribeFirewall", ResourceId=ulb_id, ResourceType="ulb")
    raw = api.last_raw
    assert raw["RetCode"] == 0 and raw.get("DataSet") == [], raw
    assert resp["DataSet"] == []
