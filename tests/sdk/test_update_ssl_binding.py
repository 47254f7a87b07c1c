"""UpdateSSLBinding's four scopes (spec §4.4) on a mixed project of CLBs and ALBs.

After every call the whole project is read back through every path — DescribeVServer,
DescribeULB, DescribeListeners per listener, DescribeSSL (BindedTargetSet) and
DescribeSSLV2 (Relations) per certificate — and compared with a model that applies the
documented scope rules (World.expect_replaced)."""

from types import SimpleNamespace

import pytest

from harness import one_listener, ssl_absent


@pytest.fixture
def mixed(world, certs):
    """Two CLBs and two ALBs; `old` is bound in every role a certificate can have."""
    t = SimpleNamespace(world=world, api=world.api)
    t.old = world.ssl(certs.chained("www.example.test"), "old")
    t.new = world.ssl(certs.chained("www.example.test", key_type="rsa"), "new")
    t.other = world.ssl(certs.chained("other.example.test"), "other")
    t.extra = world.ssl(certs.wildcard("img.example.test"), "extra")

    t.clb1 = world.clb("clb-1")
    t.v11 = world.vserver(t.clb1, "v11")
    t.v12 = world.vserver(t.clb1, "v12")
    t.v13 = world.vserver(t.clb1, "v13")
    t.v14 = world.vserver(t.clb1, "v14-http", protocol="HTTP")
    t.v15 = world.vserver(t.clb1, "v15-unbound")
    t.clb2 = world.clb("clb-2")
    t.v21 = world.vserver(t.clb2, "v21")
    for vs, ssl in ((t.v11, t.old), (t.v12, t.old), (t.v13, t.other)):
        world.bind(t.clb1, vs, ssl)
    world.bind(t.clb2, t.v21, t.old)

    t.alb1 = world.alb("alb-1")
    t.l11 = world.listener(t.alb1, "l11", t.old)
    t.l12 = world.listener(t.alb1, "l12", t.other)
    t.l13 = world.listener(t.alb1, "l13-http", None, protocol="HTTP")
    world.add_sni(t.alb1, t.l12, [t.old, t.extra])
    t.alb2 = world.alb("alb-2")
    t.l21 = world.listener(t.alb2, "l21", t.old)
    t.l22 = world.listener(t.alb2, "l22", t.other)
    world.add_sni(t.alb2, t.l22, [t.old])
    world.verify()
    return t


# (case id, LoadBalancerId attribute or None, ListenerId attribute or None)
SCOPES = [
    ("listener-clb-vserver", None, "v11"),
    ("listener-alb-default", None, "l11"),
    ("listener-alb-sni-keeps-role", None, "l12"),
    ("lb-clb", "clb1", None),
    ("lb-alb-default-and-sni", "alb1", None),
    ("lb-and-listener-clb", "clb1", "v12"),
    ("lb-and-listener-alb-sni", "alb2", "l22"),
    ("project", None, None),
]


@pytest.mark.parametrize("case,lb_attr,listener_attr", SCOPES, ids=[s[0] for s in SCOPES])
def test_update_ssl_binding_scope(mixed, case, lb_attr, listener_attr):
    t = mixed
    lb = getattr(t, lb_attr) if lb_attr else None
    listener = getattr(t, listener_attr) if listener_attr else None
    params = {"OldSSLId": t.old, "NewSSLId": t.new}
    if lb:
        params["LoadBalancerId"] = lb
    if listener:
        params["ListenerId"] = listener

    assert t.api.call("UpdateSSLBinding", **params) == {}
    t.api.raw_ok("UpdateSSLBinding")
    t.world.expect_replaced(t.old, t.new, lb=lb, listener=listener)
    t.world.verify()


def test_project_scope_frees_the_old_certificate(mixed):
    t = mixed
    t.api.fails(4108, "DeleteSSL", SSLId=t.old)
    t.world.verify()

    t.api.call("UpdateSSLBinding", OldSSLId=t.old, NewSSLId=t.new)
    t.world.expect_replaced(t.old, t.new)
    t.world.verify()
    # Default stays default, SNI stays SNI.
    assert {(c["SSLId"], c["IsDefault"]) for c in one_listener(t.api, t.alb1, t.l12)["Certificates"]} == {
        (t.other, True), (t.new, False), (t.extra, False)}
    assert {(c["SSLId"], c["IsDefault"]) for c in one_listener(t.api, t.alb1, t.l11)["Certificates"]} == {
        (t.new, True)}

    t.api.call("DeleteSSL", SSLId=t.old)
    t.world.ssl_ids.remove(t.old)
    ssl_absent(t.api, t.old)
    t.world.verify()


def test_replacing_back_and_forth(mixed):
    """Old→New then New→Old restores every binding: the call moves bindings, it does not
    merge them into the first certificate it meets."""
    t = mixed
    before = t.world.expected()
    t.api.call("UpdateSSLBinding", OldSSLId=t.old, NewSSLId=t.new, LoadBalancerId=t.alb1)
    t.world.expect_replaced(t.old, t.new, lb=t.alb1)
    t.world.verify()
    t.api.call("UpdateSSLBinding", OldSSLId=t.new, NewSSLId=t.old, LoadBalancerId=t.alb1)
    t.world.expect_replaced(t.new, t.old, lb=t.alb1)
    t.world.verify()
    assert t.world.expected() == before


def test_conflict_on_one_alb_listener_changes_nothing(mixed):
    """`new` is already an SNI certificate of l22, where `old` is too: replacing would
    bind it twice, so the whole project-wide call fails (4105) and no other listener
    moves either — one transaction."""
    t = mixed
    t.world.add_sni(t.alb2, t.l22, [t.new])
    t.api.fails(4105, "UpdateSSLBinding", OldSSLId=t.old, NewSSLId=t.new)
    t.world.verify()
    t.api.fails(4105, "UpdateSSLBinding", OldSSLId=t.old, NewSSLId=t.new, LoadBalancerId=t.alb2)
    t.world.verify()
    # The same replacement outside the conflicting listener goes through.
    t.api.call("UpdateSSLBinding", OldSSLId=t.old, NewSSLId=t.new, LoadBalancerId=t.alb1)
    t.world.expect_replaced(t.old, t.new, lb=t.alb1)
    t.world.verify()
