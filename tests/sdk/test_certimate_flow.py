"""certimate's renewal path (spec §6.3), the main real user of "replace a certificate":
upload with client-side de-duplication, CLB deploy by unbind+bind, ALB deploy by
replacing the default certificate or adding an SNI certificate and pruning old ones."""

import time

from certs import strip_whitespace
from harness import describe_all_ssl, one_listener, one_ssl, one_vserver, ssl_absent


# ---- certimate's algorithms, as its providers implement them --------------------------

def certimate_upload(api, bundle) -> tuple[str, bool]:
    """Returns (SSLId, created). Reuses a certificate whose NotBefore, NotAfter and
    whitespace-free SSLContent equal the new material."""
    for item in describe_all_ssl(api):
        if (item["NotBefore"] == bundle.not_before and item["NotAfter"] == bundle.not_after
                and strip_whitespace(item["SSLContent"]) == bundle.expected_content_stripped()):
            return item["SSLId"], False
    name = f"certimate-{int(time.time() * 1000)}"
    ssl_id = api.call("CreateSSL", SSLName=name, SSLType="Pem", UserCert=bundle.cert_pem,
                      CaCert=bundle.chain_pem, PrivateKey=bundle.key_pem)["SSLId"]
    return ssl_id, True


def _no_check(action, params):
    pass


def certimate_deploy_clb(api, ulb_id, ssl_id, on_mutation=_no_check) -> list[str]:
    """Whole-LB target. Returns the mutating actions it issued; `on_mutation(action,
    params)` runs after each of them."""
    mutations = []

    def mutate(action, **params):
        api.call(action, **params)
        api.raw_ok(action)
        mutations.append(action)
        on_mutation(action, params)

    vservers, offset = [], 0
    while True:
        page = api.call("DescribeVServer", ULBId=ulb_id, Offset=offset, Limit=100)["DataSet"]
        vservers += [v for v in page if v["Protocol"] == "HTTPS"]
        if len(page) < 100:
            break
        offset += 100
    for vs in vservers:
        current = api.call("DescribeVServer", ULBId=ulb_id, VServerId=vs["VServerId"], Limit=1)["DataSet"][0]
        bound = [s["SSLId"] for s in current["SSLSet"]]
        if ssl_id in bound:
            continue
        for old in bound:
            mutate("UnbindSSL", ULBId=ulb_id, VServerId=vs["VServerId"], SSLId=old)
        mutate("BindSSL", ULBId=ulb_id, VServerId=vs["VServerId"], SSLId=ssl_id)
    return mutations


def certimate_deploy_alb(api, alb_id, ssl_id, domain=None, on_mutation=_no_check) -> list[str]:
    mutations = []

    def mutate(action, **params):
        api.call(action, **params)
        api.raw_ok(action)
        mutations.append(action)
        on_mutation(action, params)

    listeners, offset = [], 0
    while True:
        page = api.call("DescribeListeners", LoadBalancerId=alb_id, Offset=offset, Limit=100)["Listeners"]
        listeners += [l for l in page if l["ListenerProtocol"] == "HTTPS"]
        if len(page) < 100:
            break
        offset += 100
    for listener in listeners:
        current = api.call("DescribeListeners", LoadBalancerId=alb_id, ListenerId=listener["ListenerId"],
                           Limit=1)["Listeners"][0]
        certificates = current["Certificates"]
        if domain is None:
            if any(c["SSLId"] == ssl_id and c["IsDefault"] for c in certificates):
                continue
            mutate("UpdateListenerAttribute", LoadBalancerId=alb_id, ListenerId=listener["ListenerId"],
                   Certificates=[ssl_id])
            continue
        if any(c["SSLId"] == ssl_id and not c["IsDefault"] for c in certificates):
            continue
        mutate("AddSSLBinding", LoadBalancerId=alb_id, ListenerId=listener["ListenerId"], SSLIds=[ssl_id])
        now = int(time.time())
        stale = []
        for c in certificates:
            if c["IsDefault"] or c["SSLId"] == ssl_id:
                continue
            info = api.call("DescribeSSLV2", SSLId=c["SSLId"], Limit=1)["DataSet"][0]
            if info["Domains"] == domain or info["NotAfter"] < now:
                stale.append(c["SSLId"])
        if stale:
            mutate("DeleteSSLBinding", LoadBalancerId=alb_id, ListenerId=listener["ListenerId"], SSLIds=stale)
    return mutations


# ---- tests ------------------------------------------------------------------------------

def test_certimate_upload_deduplicates_on_server_data(fresh_api, certs):
    api = fresh_api
    bundle = certs.chained("renew.example.test")
    first, created = certimate_upload(api, bundle)
    assert created
    item = one_ssl(api, first)
    assert item["SSLName"].startswith("certimate-")
    # These are exactly what certimate compares; if any differs it re-uploads forever.
    assert (item["NotBefore"], item["NotAfter"]) == (bundle.not_before, bundle.not_after), item
    assert strip_whitespace(item["SSLContent"]) == bundle.expected_content_stripped(), (
        "SSLContent must be UserCert + PrivateKey + CaCert (whitespace aside)")

    again, created = certimate_upload(api, bundle)
    assert (again, created) == (first, False)
    assert [s["SSLId"] for s in describe_all_ssl(api)] == [first]

    renewed = certs.chained("renew.example.test")
    second, created = certimate_upload(api, renewed)
    assert created and second != first
    assert [s["SSLId"] for s in describe_all_ssl(api)] == [first, second]


def test_certimate_clb_deploy_replaces_by_unbind_and_bind(world, certs):
    api = world.api
    old = world.ssl(certs.chained("shop.example.test"), "old")
    other = world.ssl(certs.chained("other.example.test"), "other")
    ulb = world.clb("certimate-clb")
    with_old = world.vserver(ulb, "https-old")
    with_other = world.vserver(ulb, "https-other")
    empty = world.vserver(ulb, "https-empty")
    plain = world.vserver(ulb, "http", protocol="HTTP")
    world.bind(ulb, with_old, old)
    world.bind(ulb, with_other, other)

    new, _ = certimate_upload(api, certs.chained("shop.example.test"))
    world.ssl_ids.append(new)

    # Binding over an existing certificate is refused (certimate#1224) and changes nothing.
    e = api.fails(63072, "BindSSL", ULBId=ulb, VServerId=with_old, SSLId=new)
    assert "ssl-" in e.message
    world.verify()

    mutations = certimate_deploy_clb(api, ulb, new, on_mutation=world.apply)
    assert sorted(mutations) == ["BindSSL"] * 3 + ["UnbindSSL"] * 2, mutations
    assert all(world.clb_vservers[(ulb, vs)] == new for vs in (with_old, with_other, empty))
    assert one_vserver(api, ulb, plain)["SSLSet"] == []

    # A second run finds the certificate everywhere and changes nothing.
    assert certimate_deploy_clb(api, ulb, new) == []
    world.verify()

    # The old certificates are free now and can be deleted.
    for ssl_id in (old, other):
        api.call("DeleteSSL", SSLId=ssl_id)
        ssl_absent(api, ssl_id)
        world.ssl_ids.remove(ssl_id)
        world.verify()


def test_certimate_alb_deploy_replaces_default_certificate(world, certs):
    api = world.api
    old = world.ssl(certs.chained("app.example.test"), "old")
    alb = world.alb("certimate-alb")
    https = world.listener(alb, "https", old)
    https2 = world.listener(alb, "https-2", old)
    plain = world.listener(alb, "http", None, protocol="HTTP")

    new, _ = certimate_upload(api, certs.chained("app.example.test"))
    world.ssl_ids.append(new)

    assert certimate_deploy_alb(api, alb, new, on_mutation=world.apply) == ["UpdateListenerAttribute"] * 2
    assert world.alb_listeners[(alb, https)]["default"] == world.alb_listeners[(alb, https2)]["default"] == new
    assert one_listener(api, alb, plain)["Certificates"] == []

    assert certimate_deploy_alb(api, alb, new) == []
    api.call("DeleteSSL", SSLId=old)
    ssl_absent(api, old)
    world.ssl_ids.remove(old)
    world.verify()


def test_certimate_alb_sni_deploy_adds_new_and_prunes_stale(world, certs):
    api = world.api
    default = world.ssl(certs.chained("default.example.test"), "default")
    old_sni = world.ssl(certs.chained("api.example.test"), "api-old")
    expired = world.ssl(certs.expired("legacy.example.test"), "legacy-expired")
    unrelated = world.ssl(certs.chained("img.example.test", key_type="rsa"), "img")
    alb = world.alb("certimate-sni")
    https = world.listener(alb, "https", default)
    world.add_sni(alb, https, [old_sni, expired, unrelated])

    new, _ = certimate_upload(api, certs.chained("api.example.test"))
    world.ssl_ids.append(new)
    assert one_ssl(api, expired, "DescribeSSLV2")["NotAfter"] < time.time()

    mutations = certimate_deploy_alb(api, alb, new, domain="api.example.test", on_mutation=world.apply)
    assert mutations == ["AddSSLBinding", "DeleteSSLBinding"], mutations
    assert world.alb_listeners[(alb, https)]["sni"] == {new, unrelated}
    certificates = one_listener(api, alb, https)["Certificates"]
    assert [c["SSLId"] for c in certificates if c["IsDefault"]] == [default], (
        "SNI deploys never touch the default certificate")

    # Idempotent: the new certificate is already an SNI certificate.
    assert certimate_deploy_alb(api, alb, new, domain="api.example.test") == []
    world.verify()
