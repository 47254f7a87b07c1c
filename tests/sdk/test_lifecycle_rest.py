"""The resource actions the tool flows do not reach: DescribeULBSimple, UpdateLoadBalancerAttribute,
DeleteListener and DeleteLoadBalancer, each checked through Describe* afterwards (and their
responses recorded for the Go-type check)."""

from harness import one_alb


def test_describe_ulb_simple_summarises(world):
    api = world.api
    ulb = world.clb("simple")
    world.vserver(ulb, "a", protocol="HTTP")
    world.vserver(ulb, "b", protocol="HTTP")
    resp = api.call("DescribeULBSimple", ULBId=ulb)
    raw = api.last_raw
    assert raw["TotalCount"] == 1, raw
    item = raw["DataSet"][0]
    assert item["ULBId"] == ulb and item["Name"] == "simple", item
    assert type(item["VServerCount"]) is int and item["VServerCount"] == 2, item
    assert resp["DataSet"][0]["ULBId"] == ulb


def test_alb_attributes_then_listener_and_lb_deletion(world):
    api = world.api
    ssl = world.ssl()
    alb = world.alb("before")
    listener = world.listener(alb, "l1", ssl)
    api.call("UpdateLoadBalancerAttribute", LoadBalancerId=alb, Name="after", Remark="renamed")
    lb = one_alb(api, alb)
    assert (lb["Name"], lb["Remark"]) == ("after", "renamed"), lb

    api.call("DeleteListener", LoadBalancerId=alb, ListenerId=listener, RelatedRedirectDisabled=False)
    raw = api.invoke("DescribeListeners", LoadBalancerId=alb)
    assert raw["RetCode"] == 0 and raw["Listeners"] == [], raw
    # The certificate is free again: nothing binds it.
    api.call("DescribeSSLV2", SSLId=ssl)
    assert api.last_raw["DataSet"][0]["Relations"] == [], api.last_raw

    api.call("DeleteLoadBalancer", LoadBalancerId=alb)
    raw = api.invoke("DescribeLoadBalancers", LoadBalancerIds=[alb])
    assert raw["RetCode"] == 0 and raw["LoadBalancers"] == [], raw
    api.call("DeleteSSL", SSLId=ssl)
