"""Refusals (spec §2.7, §4): each case sends one request that must fail with a given
RetCode and must change nothing a client can read. Cases are data; one scene per
family is built once per module and shared, since no case may alter it."""

from types import SimpleNamespace

import pytest

from harness import Api, World, snapshot

# ---- scenes -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scene(server, api, certs, recorder):
    """Certificates A..D in the owner's default project, plus lazily built clients with
    wrong credentials. CLB and ALB parts are separate fixtures so that a server without
    ALB support still runs the CLB cases."""
    s = SimpleNamespace(api=api, server=server, certs=certs)
    s.world = World(api, certs)
    s.A = s.world.ssl(certs.chained("a.example.test"), "A")
    s.B = s.world.ssl(certs.chained("b.example.test"), "B")
    s.C = s.world.ssl(certs.chained("c.example.test"), "C")
    s.D = s.world.ssl(certs.chained("d.example.test"), "D")
    s._clients = {"owner": api}

    def client(name):
        if name not in s._clients:
            if name == "forger":
                s._clients[name] = api.with_config("forger", private_key=api.config["private_key"][::-1])
            elif name == "stranger":
                s._clients[name] = api.with_config("stranger", public_key="certbind-unknown", private_key="x")
            elif name == "trespasser":
                other = server.create_account("errors-trespasser")
                s._clients[name] = Api(other, recorder, label="trespasser", project_id=api.project_id)
            else:
                raise KeyError(name)
        return s._clients[name]

    s.client = client
    return s


@pytest.fixture(scope="module")
def clb_scene(scene):
    """clb1: v1 HTTPS bound to A, v2 HTTPS unbound, vh HTTP; clb2: v3 HTTPS."""
    s, w = scene, scene.world
    if not hasattr(s, "clb1"):
        s.clb1 = w.clb("errors-clb-1")
        s.v1 = w.vserver(s.clb1, "v1", port=443)
        s.v2 = w.vserver(s.clb1, "v2", port=8443)
        s.vh = w.vserver(s.clb1, "vh", protocol="HTTP", port=80)
        s.clb2 = w.clb("errors-clb-2")
        s.v3 = w.vserver(s.clb2, "v3", port=443)
        w.bind(s.clb1, s.v1, s.A)
    return s


@pytest.fixture(scope="module")
def alb_scene(scene):
    """alb1: l1 HTTPS default A + SNI B, lh HTTP; alb2: l2 HTTPS default C."""
    s, w = scene, scene.world
    if not hasattr(s, "alb1"):
        s.alb1 = w.alb("errors-alb-1")
        s.l1 = w.listener(s.alb1, "l1", s.A, port=443)
        s.lh = w.listener(s.alb1, "lh", None, protocol="HTTP", port=80)
        s.alb2 = w.alb("errors-alb-2")
        s.l2 = w.listener(s.alb2, "l2", s.C, port=443)
        w.add_sni(s.alb1, s.l1, [s.B])
    return s


def run_case(s, client, action, params, codes, generic, families):
    before = snapshot(s.api, **families)
    s.client(client).fails(codes, action, generic=generic, **params)
    after = snapshot(s.api, **families)
    assert after == before, f"a refused {action} changed the project:\n before: {before}\n after:  {after}"
    s.world.verify()


# ---- cases ----------------------------------------------------------------------------------
# (id, client, action, params(scene) → dict, RetCode(s), generic invoke?)

def _bundle_params(s, name, **overrides):
    params = s.certs.chained(f"{name}.example.test").create_ssl_params(name)
    params.update(overrides)
    return params


def _mismatched_key(s):
    one, two = s.certs.chained("one.example.test"), s.certs.chained("two.example.test")
    return {"SSLName": "mismatch", "SSLType": "Pem", "UserCert": one.cert_pem, "PrivateKey": two.key_pem}


SSL_CASES = [
    ("bad-signature-create", "forger", "CreateSSL", lambda s: _bundle_params(s, "forged"), 171, False),
    ("bad-signature-delete", "forger", "DeleteSSL", lambda s: {"SSLId": s.D}, 171, False),
    ("bad-signature-rename", "forger", "UpdateSSLAttribute", lambda s: {"SSLId": s.D, "SSLName": "x"}, 171, False),
    ("unknown-key-delete", "stranger", "DeleteSSL", lambda s: {"SSLId": s.D}, 172, False),
    ("foreign-project-create", "trespasser", "CreateSSL", lambda s: _bundle_params(s, "tres"), 292, False),
    ("foreign-project-delete", "trespasser", "DeleteSSL", lambda s: {"SSLId": s.D}, 292, False),
    ("unknown-action", "owner", "DescribeNothing", lambda s: {}, 161, True),
    ("delete-unknown-ssl", "owner", "DeleteSSL", lambda s: {"SSLId": "ssl-nosuchid"}, 4079, False),
    ("rename-unknown-ssl", "owner", "UpdateSSLAttribute", lambda s: {"SSLId": "ssl-nosuchid", "SSLName": "x"}, 4079, False),
    ("rename-to-empty", "owner", "UpdateSSLAttribute", lambda s: {"SSLId": s.D, "SSLName": ""}, 230, False),
    ("create-without-name", "owner", "CreateSSL",
     lambda s: {k: v for k, v in _bundle_params(s, "noname").items() if k != "SSLName"}, 230, True),
    ("create-garbage", "owner", "CreateSSL",
     lambda s: {"SSLName": "garbage", "SSLType": "Pem", "SSLContent": "not a certificate"}, 4111, False),
    ("create-key-mismatch", "owner", "CreateSSL", _mismatched_key, 4111, False),
    ("create-without-key", "owner", "CreateSSL",
     lambda s: {"SSLName": "nokey", "SSLType": "Pem", "UserCert": s.certs.self_signed("nokey.example.test").cert_pem},
     (4111, 230), False),
    ("update-binding-unknown-new", "owner", "UpdateSSLBinding", lambda s: {"OldSSLId": s.D, "NewSSLId": "ssl-nosuchid"}, 4079, False),
    ("update-binding-unknown-old", "owner", "UpdateSSLBinding", lambda s: {"OldSSLId": "ssl-nosuchid", "NewSSLId": s.D}, 4079, False),
    ("update-binding-without-new", "owner", "UpdateSSLBinding", lambda s: {"OldSSLId": s.D}, 230, True),
]

CLB_CASES = [
    ("bad-signature-bind", "forger", "BindSSL", lambda s: {"ULBId": s.clb1, "VServerId": s.v2, "SSLId": s.D}, 171, False),
    ("foreign-project-unbind", "trespasser", "UnbindSSL", lambda s: {"ULBId": s.clb1, "VServerId": s.v1, "SSLId": s.A}, 292, False),
    ("delete-ssl-bound-to-vserver", "owner", "DeleteSSL", lambda s: {"SSLId": s.A}, 4108, False),
    ("bind-vserver-of-other-lb", "owner", "BindSSL", lambda s: {"ULBId": s.clb2, "VServerId": s.v2, "SSLId": s.D}, 4143, False),
    ("unbind-vserver-of-other-lb", "owner", "UnbindSSL", lambda s: {"ULBId": s.clb2, "VServerId": s.v1, "SSLId": s.A}, 4143, False),
    ("update-binding-listener-not-on-lb", "owner", "UpdateSSLBinding",
     lambda s: {"OldSSLId": s.A, "NewSSLId": s.D, "LoadBalancerId": s.clb2, "ListenerId": s.v1}, 4143, False),
    ("update-binding-legacy-listener-not-on-lb", "owner", "UpdateSSLBinding",
     lambda s: {"OldSSLId": s.A, "NewSSLId": s.D, "ULBId": s.clb2, "VServerId": s.v1}, 4143, True),
    ("bind-unknown-lb", "owner", "BindSSL", lambda s: {"ULBId": "ulb-nosuchid", "VServerId": s.v2, "SSLId": s.D}, 4103, False),
    ("update-binding-unknown-lb", "owner", "UpdateSSLBinding",
     lambda s: {"OldSSLId": s.A, "NewSSLId": s.D, "LoadBalancerId": "ulb-nosuchid"}, 4103, False),
    ("update-binding-unknown-listener", "owner", "UpdateSSLBinding",
     lambda s: {"OldSSLId": s.A, "NewSSLId": s.D, "ListenerId": "vserver-nosuchid"}, 4143, False),
    ("bind-unknown-ssl", "owner", "BindSSL", lambda s: {"ULBId": s.clb1, "VServerId": s.v2, "SSLId": "ssl-nosuchid"}, 4079, False),
    ("bind-over-existing", "owner", "BindSSL", lambda s: {"ULBId": s.clb1, "VServerId": s.v1, "SSLId": s.D}, 63072, False),
    ("bind-same-again", "owner", "BindSSL", lambda s: {"ULBId": s.clb1, "VServerId": s.v1, "SSLId": s.A}, 63072, False),
    ("bind-http-vserver", "owner", "BindSSL", lambda s: {"ULBId": s.clb1, "VServerId": s.vh, "SSLId": s.D}, (4105, 230), False),
    ("unbind-not-bound", "owner", "UnbindSSL", lambda s: {"ULBId": s.clb1, "VServerId": s.v2, "SSLId": s.A}, 4106, False),
    ("unbind-other-certificate", "owner", "UnbindSSL", lambda s: {"ULBId": s.clb1, "VServerId": s.v1, "SSLId": s.D}, 4106, False),
    ("vserver-port-clash", "owner", "CreateVServer",
     lambda s: {"ULBId": s.clb1, "Protocol": "HTTPS", "FrontendPort": 443, "ListenType": "RequestProxy"}, 4107, False),
]

ALB_CASES = [
    ("foreign-project-add-sni", "trespasser", "AddSSLBinding",
     lambda s: {"LoadBalancerId": s.alb1, "ListenerId": s.l1, "SSLIds": [s.D]}, 292, False),
    ("delete-ssl-default-on-listener", "owner", "DeleteSSL", lambda s: {"SSLId": s.C}, 4108, False),
    ("delete-ssl-sni-on-listener", "owner", "DeleteSSL", lambda s: {"SSLId": s.B}, 4108, False),
    ("add-sni-listener-of-other-lb", "owner", "AddSSLBinding",
     lambda s: {"LoadBalancerId": s.alb2, "ListenerId": s.l1, "SSLIds": [s.D]}, 4143, False),
    ("delete-sni-listener-of-other-lb", "owner", "DeleteSSLBinding",
     lambda s: {"LoadBalancerId": s.alb2, "ListenerId": s.l1, "SSLIds": [s.B]}, 4143, False),
    ("set-default-listener-of-other-lb", "owner", "UpdateListenerAttribute",
     lambda s: {"LoadBalancerId": s.alb2, "ListenerId": s.l1, "Certificates": [s.D]}, 4143, False),
    ("update-binding-alb-listener-not-on-lb", "owner", "UpdateSSLBinding",
     lambda s: {"OldSSLId": s.B, "NewSSLId": s.D, "LoadBalancerId": s.alb2, "ListenerId": s.l1}, 4143, False),
    ("add-sni-unknown-lb", "owner", "AddSSLBinding",
     lambda s: {"LoadBalancerId": "alb-nosuchid", "ListenerId": s.l1, "SSLIds": [s.D]}, 4103, False),
    ("add-sni-unknown-ssl", "owner", "AddSSLBinding",
     lambda s: {"LoadBalancerId": s.alb1, "ListenerId": s.l1, "SSLIds": [s.D, "ssl-nosuchid"]}, 4079, False),
    ("add-sni-duplicate", "owner", "AddSSLBinding",
     lambda s: {"LoadBalancerId": s.alb1, "ListenerId": s.l1, "SSLIds": [s.B]}, 4105, False),
    ("add-sni-default-again", "owner", "AddSSLBinding",
     lambda s: {"LoadBalancerId": s.alb1, "ListenerId": s.l1, "SSLIds": [s.A]}, 4105, False),
    ("add-sni-twice-in-one-call", "owner", "AddSSLBinding",
     lambda s: {"LoadBalancerId": s.alb1, "ListenerId": s.l1, "SSLIds": [s.D, s.D]}, 4105, False),
    ("delete-sni-default", "owner", "DeleteSSLBinding",
     lambda s: {"LoadBalancerId": s.alb1, "ListenerId": s.l1, "SSLIds": [s.A]}, 4106, False),
    ("delete-sni-not-bound", "owner", "DeleteSSLBinding",
     lambda s: {"LoadBalancerId": s.alb1, "ListenerId": s.l1, "SSLIds": [s.D]}, 4106, False),
    ("delete-sni-partly-bound", "owner", "DeleteSSLBinding",
     lambda s: {"LoadBalancerId": s.alb1, "ListenerId": s.l1, "SSLIds": [s.B, s.D]}, 4106, False),
    ("https-listener-without-certificate", "owner", "CreateListener",
     lambda s: {"LoadBalancerId": s.alb1, "ListenerProtocol": "HTTPS", "ListenerPort": 9443}, 230, False),
    ("https-listener-two-defaults", "owner", "CreateListener",
     lambda s: {"LoadBalancerId": s.alb1, "ListenerProtocol": "HTTPS", "ListenerPort": 9443,
                "Certificates": [s.C, s.D]}, 230, False),
    ("https-listener-unknown-certificate", "owner", "CreateListener",
     lambda s: {"LoadBalancerId": s.alb1, "ListenerProtocol": "HTTPS", "ListenerPort": 9443,
                "Certificates": ["ssl-nosuchid"]}, 4079, False),
    ("listener-port-clash", "owner", "CreateListener",
     lambda s: {"LoadBalancerId": s.alb1, "ListenerProtocol": "HTTPS", "ListenerPort": 443,
                "Certificates": [s.D]}, 4107, False),
]


def _ids(cases):
    return [c[0] for c in cases]


@pytest.mark.parametrize("case", SSL_CASES, ids=_ids(SSL_CASES))
def test_refused_certificate_request(scene, case):
    _, client, action, params, codes, generic = case
    run_case(scene, client, action, params(scene), codes, generic, {"clb": False, "alb": False})


@pytest.mark.parametrize("case", CLB_CASES, ids=_ids(CLB_CASES))
def test_refused_clb_request(clb_scene, case):
    _, client, action, params, codes, generic = case
    run_case(clb_scene, client, action, params(clb_scene), codes, generic, {"clb": True, "alb": False})


@pytest.mark.parametrize("case", ALB_CASES, ids=_ids(ALB_CASES))
def test_refused_alb_request(alb_scene, case):
    _, client, action, params, codes, generic = case
    run_case(alb_scene, client, action, params(alb_scene), codes, generic, {"clb": False, "alb": True})


def test_twenty_sixth_sni_certificate_is_over_quota(world, certs):
    """At most 25 SNI certificates per listener, the default not counted (§4.3)."""
    api = world.api
    bundle = certs.chained("sni.example.test")
    default = world.ssl(bundle, "default")
    alb = world.alb("quota")
    listener = world.listener(alb, "https", default)
    sni = [world.ssl(bundle, f"sni-{i}") for i in range(26)]

    world.add_sni(alb, listener, sni[:24])
    before = snapshot(api, clb=False)
    api.fails(4207, "AddSSLBinding", LoadBalancerId=alb, ListenerId=listener, SSLIds=sni[24:26])
    assert snapshot(api, clb=False) == before, "an over-quota batch must add none of its certificates"
    world.verify()

    world.add_sni(alb, listener, [sni[24]])
    assert len(api.call("DescribeListeners", LoadBalancerId=alb, ListenerId=listener)["Listeners"][0]["Certificates"]) == 26
    before = snapshot(api, clb=False)
    e = api.fails(4207, "AddSSLBinding", LoadBalancerId=alb, ListenerId=listener, SSLIds=[sni[25]])
    assert e.retryable  # business codes are >= 2000, so SDKs may retry them; harmless
    assert snapshot(api, clb=False) == before
    world.verify()

    # Replacing an SNI certificate does not count against the quota.
    api.call("UpdateSSLBinding", OldSSLId=sni[0], NewSSLId=sni[25], ListenerId=listener)
    world.expect_replaced(sni[0], sni[25], listener=listener)
    world.verify()
