//! CLB actions against the real server: ULBs, VServers and backends — every action's success
//! path with the exact JSON types the Go SDK needs, and the error paths as one table of cases
//! that must each answer their RetCode and leave the state unchanged.

use std::net::Ipv4Addr;

use crate::support::{self, Server};
use serde_json::{json, Value};

/// JSON types of the SDK models (spec §5.2 "Go SDK type").
#[derive(Debug, Clone, Copy)]
enum T {
    Int,
    Str,
    Arr,
    Obj,
}

#[rustfmt::skip]
const ULB_SET: &[(&str, T)] = &[
    ("Bandwidth", T::Int), ("BandwidthType", T::Int), ("BusinessId", T::Str), ("CreateTime", T::Int),
    ("EnableLog", T::Int), ("ExpireTime", T::Int), ("FirewallSet", T::Arr), ("IPSet", T::Arr),
    ("IPVersion", T::Str), ("ListenType", T::Str), ("LogSet", T::Obj), ("Name", T::Str),
    ("PrivateIP", T::Str), ("Remark", T::Str), ("Resource", T::Arr), ("SnatIps", T::Arr),
    ("SubnetId", T::Str), ("Tag", T::Str), ("ULBId", T::Str), ("ULBName", T::Str),
    ("ULBType", T::Str), ("VPCId", T::Str), ("VServerSet", T::Arr),
];

#[rustfmt::skip]
const ULB_SIMPLE_SET: &[(&str, T)] = &[
    ("Bandwidth", T::Int), ("BandwidthType", T::Int), ("BusinessId", T::Str), ("CreateTime", T::Int),
    ("EnableLog", T::Int), ("FirewallSet", T::Arr), ("IPSet", T::Arr), ("IPVersion", T::Str),
    ("ListenType", T::Str), ("LogSet", T::Obj), ("Name", T::Str), ("PrivateIP", T::Str),
    ("Remark", T::Str), ("SnatIps", T::Arr), ("SubnetId", T::Str), ("Tag", T::Str),
    ("ULBId", T::Str), ("ULBType", T::Str), ("VPCId", T::Str), ("VServerCount", T::Int),
    ("WAFMode", T::Str),
];

#[rustfmt::skip]
const IP_SET: &[(&str, T)] = &[
    ("Bandwidth", T::Int), ("BandwidthType", T::Int), ("EIP", T::Str), ("EIPId", T::Str),
    ("OperatorName", T::Str),
];

#[rustfmt::skip]
const LOGGER_SET: &[(&str, T)] = &[("BucketName", T::Str), ("TokenID", T::Str), ("TokenName", T::Str)];

#[rustfmt::skip]
const VSERVER_SET: &[(&str, T)] = &[
    ("BackendSet", T::Arr), ("ClientTimeout", T::Int), ("Domain", T::Str),
    ("EnableCompression", T::Int), ("EnableHTTP2", T::Int), ("ForwardPort", T::Int),
    ("FrontendPort", T::Int), ("ListenType", T::Str), ("Method", T::Str), ("MonitorType", T::Str),
    ("Path", T::Str), ("PersistenceInfo", T::Str), ("PersistenceType", T::Str),
    ("PolicySet", T::Arr), ("Protocol", T::Str), ("RequestMsg", T::Str), ("ResponseMsg", T::Str),
    ("SSLSet", T::Arr), ("SecurityPolicy", T::Obj), ("Status", T::Int), ("ULBId", T::Str),
    ("VServerId", T::Str), ("VServerName", T::Str),
];

#[rustfmt::skip]
const BACKEND_SET: &[(&str, T)] = &[
    ("BackendId", T::Str), ("Enabled", T::Int), ("IsBackup", T::Int), ("Port", T::Int),
    ("PrivateIP", T::Str), ("ResourceId", T::Str), ("ResourceName", T::Str),
    ("ResourceType", T::Str), ("Status", T::Int), ("SubResourceId", T::Str),
    ("SubResourceName", T::Str), ("SubResourceType", T::Str), ("SubnetId", T::Str),
    ("VPCId", T::Str), ("Weight", T::Int),
];

#[rustfmt::skip]
const POLICY_SET: &[(&str, T)] = &[
    ("BackendSet", T::Arr), ("DomainMatchMode", T::Str), ("Match", T::Str), ("PolicyId", T::Str),
    ("PolicyPriority", T::Int), ("PolicyType", T::Str), ("TotalCount", T::Int), ("Type", T::Str),
    ("VServerId", T::Str),
];

#[rustfmt::skip]
const POLICY_BACKEND_SET: &[(&str, T)] = &[
    ("BackendId", T::Str), ("ObjectId", T::Str), ("Port", T::Int), ("PrivateIP", T::Str),
    ("ResourceName", T::Str), ("ResourceType", T::Str), ("SubResourceId", T::Str),
    ("SubResourceName", T::Str), ("SubResourceType", T::Str),
];

#[rustfmt::skip]
const SECURITY_POLICY: &[(&str, T)] = &[
    ("SSLCiphers", T::Arr), ("SecurityPolicyId", T::Str), ("SecurityPolicyName", T::Str),
    ("SecurityPolicyType", T::Int), ("TLSVersion", T::Str),
];

#[rustfmt::skip]
const SSL_SET: &[(&str, T)] = &[
    ("BindedTargetSet", T::Arr), ("CreateTime", T::Int), ("Domains", T::Str), ("HashValue", T::Str),
    ("NotAfter", T::Int), ("NotBefore", T::Int), ("SSLContent", T::Str), ("SSLId", T::Str),
    ("SSLName", T::Str), ("SSLSource", T::Int), ("SSLType", T::Str), ("USSLId", T::Str),
];

/// Every declared field is present with its JSON type (extra fields are allowed by every SDK).
fn assert_shape(value: &Value, shape: &[(&str, T)], what: &str) {
    for (name, kind) in shape {
        let field = &value[*name];
        let ok = match kind {
            T::Int => field.is_i64() || field.is_u64(),
            T::Str => field.is_string(),
            T::Arr => field.is_array(),
            T::Obj => field.is_object(),
        };
        assert!(ok, "{what}.{name} must be {kind:?}, got {field} in {value}");
    }
}

/// A VServer and everything nested in it.
fn assert_vserver_shape(vserver: &Value) {
    assert_shape(vserver, VSERVER_SET, "ULBVServerSet");
    assert_shape(
        &vserver["SecurityPolicy"],
        SECURITY_POLICY,
        "BindSecurityPolicy",
    );
    for backend in vserver["BackendSet"].as_array().unwrap() {
        assert_shape(backend, BACKEND_SET, "ULBBackendSet");
    }
    for policy in vserver["PolicySet"].as_array().unwrap() {
        assert_shape(policy, POLICY_SET, "ULBPolicySet");
        for backend in policy["BackendSet"].as_array().unwrap() {
            assert_shape(backend, POLICY_BACKEND_SET, "PolicyBackendSet");
        }
    }
    for ssl in vserver["SSLSet"].as_array().unwrap() {
        assert_shape(ssl, SSL_SET, "ULBSSLSet");
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .to_string()
}

async fn create_ulb(server: &Server, params: &[(&str, &str)]) -> String {
    text(&server.ok("CreateULB", params).await["ULBId"])
}

async fn create_vserver(server: &Server, params: &[(&str, &str)]) -> String {
    text(&server.ok("CreateVServer", params).await["VServerId"])
}

async fn one_ulb(server: &Server, ulb_id: &str) -> Value {
    let answer = server.ok("DescribeULB", &[("ULBId", ulb_id)]).await;
    assert_eq!(answer["TotalCount"], 1, "{answer}");
    answer["DataSet"][0].clone()
}

async fn one_vserver(server: &Server, ulb_id: &str, vserver_id: &str) -> Value {
    let answer = server
        .ok(
            "DescribeVServer",
            &[("ULBId", ulb_id), ("VServerId", vserver_id)],
        )
        .await;
    assert_eq!(answer["TotalCount"], 1, "{answer}");
    assert_eq!(answer["DataSet"].as_array().unwrap().len(), 1, "{answer}");
    answer["DataSet"][0].clone()
}

/// A listing request and what it must answer: its parameters, `TotalCount` and the ids in order.
type Listing<'a> = (&'a [(&'a str, &'a str)], i64, Vec<&'a str>);

/// A listing's `TotalCount` and the ids in its `DataSet`.
fn listed(answer: &Value, field: &str) -> (i64, Vec<String>) {
    let total = answer["TotalCount"]
        .as_i64()
        .unwrap_or_else(|| panic!("no TotalCount: {answer}"));
    (total, ids(&answer["DataSet"], field))
}

fn ids(data_set: &Value, field: &str) -> Vec<String> {
    data_set
        .as_array()
        .unwrap()
        .iter()
        .map(|item| text(&item[field]))
        .collect()
}

#[tokio::test]
async fn ulb_lifecycle_with_sdk_types() {
    let server = support::spawn().await;
    let started = now();

    let answer = server
        .ok(
            "CreateULB",
            &[
                ("ULBName", "web"),
                ("Remark", "front"),
                ("VPCId", "uvnet-1"),
                ("SubnetId", "subnet-1"),
                ("ChargeType", "Dynamic"),
                ("InnerMode", "No"),
            ],
        )
        .await;
    let outer = text(&answer["ULBId"]);
    assert!(outer.starts_with("ulb-"), "{answer}");
    assert_eq!(answer["IPv6AddressId"], "", "{answer}");
    let inner = create_ulb(&server, &[("InnerMode", "Yes")]).await;

    let lb = one_ulb(&server, &outer).await;
    assert_shape(&lb, ULB_SET, "ULBSet");
    assert_shape(&lb["IPSet"][0], IP_SET, "ULBIPSet");
    assert_shape(&lb["LogSet"], LOGGER_SET, "LoggerSet");
    let expected = [
        ("ULBId", json!(outer)),
        ("Name", json!("web")),
        ("ULBName", json!("web")),
        ("Tag", json!("Default")),
        ("Remark", json!("front")),
        ("ULBType", json!("OuterMode")),
        ("ListenType", json!("RequestProxy")),
        ("IPVersion", json!("IPv4")),
        ("VPCId", json!("uvnet-1")),
        ("SubnetId", json!("subnet-1")),
        ("BusinessId", json!("")),
        ("VServerSet", json!([])),
        ("FirewallSet", json!([])),
        ("EnableLog", json!(0)),
    ];
    for (field, value) in expected {
        assert_eq!(lb[field], value, "{field} in {lb}");
    }
    let created = lb["CreateTime"].as_i64().unwrap();
    assert!((started - 5..=now() + 5).contains(&created), "{lb}");
    // The data-plane address is both the private IP and the one IPSet entry (a stable EIPId).
    let address: Ipv4Addr = text(&lb["PrivateIP"]).parse().expect("an IPv4 address");
    assert_eq!(lb["IPSet"][0]["EIP"], json!(address.to_string()), "{lb}");
    assert_eq!(
        lb["IPSet"][0]["EIPId"],
        json!(format!("eip-{}", &outer[4..])),
        "{lb}"
    );
    assert_eq!(lb["IPSet"].as_array().unwrap().len(), 1, "{lb}");
    assert_eq!(one_ulb(&server, &outer).await["IPSet"], lb["IPSet"]);

    // Defaults of an inner CLB; it gets its own address.
    let lb_inner = one_ulb(&server, &inner).await;
    let expected = [
        ("Name", "ULB"),
        ("Tag", "Default"),
        ("Remark", ""),
        ("ULBType", "InnerMode"),
        ("ListenType", "PacketsTransmit"),
    ];
    for (field, value) in expected {
        assert_eq!(lb_inner[field], value, "{field} in {lb_inner}");
    }
    assert_ne!(lb_inner["PrivateIP"], lb["PrivateIP"]);

    // Listing, paging and filters.
    #[rustfmt::skip]
    let pages: &[Listing] = &[
        (&[], 2, vec![&outer, &inner]),
        (&[("Limit", "1")], 2, vec![&outer]),
        (&[("Limit", "1"), ("Offset", "1")], 2, vec![&inner]),
        (&[("Offset", "2")], 2, vec![]),
        (&[("VPCId", "uvnet-1")], 1, vec![&outer]),
        (&[("SubnetId", "subnet-1"), ("VPCId", "uvnet-1")], 1, vec![&outer]),
        (&[("SubnetId", "subnet-2")], 0, vec![]),
        (&[("BusinessId", "biz-1")], 0, vec![]),
        // An unknown id is RetCode 0 with nothing in it (terraform's "gone").
        (&[("ULBId", "ulb-nosuchid")], 0, vec![]),
    ];
    for (params, total, expected) in pages {
        let answer = server.ok("DescribeULB", params).await;
        assert_eq!(
            listed(&answer, "ULBId"),
            (*total, expected.iter().map(|s| s.to_string()).collect()),
            "{params:?}"
        );
    }

    let simple = server.ok("DescribeULBSimple", &[]).await;
    assert_eq!(simple["TotalCount"], 2, "{simple}");
    for item in simple["DataSet"].as_array().unwrap() {
        assert_shape(item, ULB_SIMPLE_SET, "ULBSimpleSet");
        assert_eq!(item["VServerCount"], 0, "{item}");
    }
    assert_eq!(simple["DataSet"][0]["IPSet"], lb["IPSet"]);

    // Only what is sent changes.
    server
        .ok(
            "UpdateULBAttribute",
            &[("ULBId", &outer), ("Name", "web-2")],
        )
        .await;
    let lb = one_ulb(&server, &outer).await;
    assert_eq!(
        (&lb["Name"], &lb["Tag"], &lb["Remark"]),
        (&json!("web-2"), &json!("Default"), &json!("front"))
    );
    server
        .ok(
            "UpdateULBAttribute",
            &[
                ("ULBId", &outer),
                ("Tag", "blue"),
                ("Remark", "back"),
                ("EnableLog", "0"),
            ],
        )
        .await;
    let lb = one_ulb(&server, &outer).await;
    assert_eq!(
        (&lb["Name"], &lb["Tag"], &lb["Remark"]),
        (&json!("web-2"), &json!("blue"), &json!("back"))
    );

    server
        .ok("DeleteULB", &[("ULBId", &outer), ("ReleaseEip", "true")])
        .await;
    let gone = server.ok("DescribeULB", &[("ULBId", &outer)]).await;
    assert_eq!(
        (&gone["TotalCount"], &gone["DataSet"]),
        (&json!(0), &json!([]))
    );
    server.fails("DeleteULB", &[("ULBId", &outer)], 4103).await;
    assert_eq!(server.ok("DescribeULB", &[]).await["TotalCount"], 1);
}

#[tokio::test]
async fn vserver_lifecycle_with_sdk_types() {
    let server = support::spawn().await;
    let ulb = create_ulb(&server, &[("ULBName", "lb"), ("OuterMode", "Yes")]).await;
    let other = create_ulb(&server, &[("ULBName", "other")]).await;

    let https = create_vserver(
        &server,
        &[
            ("ULBId", &ulb),
            ("Protocol", "HTTPS"),
            ("FrontendPort", "8443"),
            ("VServerName", "web"),
            ("ListenType", "RequestProxy"),
        ],
    )
    .await;
    assert!(https.starts_with("vserver-"), "{https}");
    let vs = one_vserver(&server, &ulb, &https).await;
    assert_vserver_shape(&vs);
    let expected = [
        ("VServerId", json!(https)),
        ("VServerName", json!("web")),
        ("ULBId", json!(ulb)),
        ("Protocol", json!("HTTPS")),
        ("FrontendPort", json!(8443)),
        ("ListenType", json!("RequestProxy")),
        ("Method", json!("Roundrobin")),
        ("PersistenceType", json!("None")),
        ("PersistenceInfo", json!("")),
        ("ClientTimeout", json!(60)),
        ("MonitorType", json!("Port")),
        ("Path", json!("")),
        ("EnableHTTP2", json!(0)),
        ("EnableCompression", json!(0)),
        ("ForwardPort", json!(0)),
        ("Status", json!(0)),
        ("SSLSet", json!([])),
        ("BackendSet", json!([])),
    ];
    for (field, value) in expected {
        assert_eq!(vs[field], value, "{field} in {vs}");
    }
    assert_eq!(vs["SecurityPolicy"]["SecurityPolicyId"], "Default", "{vs}");
    // L7 VServers list the Default forwarding policy.
    let policies = vs["PolicySet"].as_array().unwrap();
    assert_eq!(policies.len(), 1, "{vs}");
    assert_eq!(
        (&policies[0]["PolicyType"], &policies[0]["TotalCount"]),
        (&json!("Default"), &json!(0))
    );

    // Same renderer in DescribeULB.
    assert_eq!(
        one_ulb(&server, &ulb).await["VServerSet"],
        json!([vs.clone()])
    );

    // Lower-case protocol, non-default settings, a TCP VServer.
    let tcp = create_vserver(
        &server,
        &[
            ("ULBId", &ulb),
            ("Protocol", "tcp"),
            ("FrontendPort", "9000"),
            ("Method", "Source"),
            ("PersistenceType", "UserDefined"),
            ("PersistenceInfo", "session"),
            ("ClientTimeout", "300"),
        ],
    )
    .await;
    let vs_tcp = one_vserver(&server, &ulb, &tcp).await;
    assert_vserver_shape(&vs_tcp);
    let expected = [
        ("Protocol", json!("TCP")),
        ("VServerName", json!("VServer")),
        ("Method", json!("Source")),
        ("PersistenceType", json!("UserDefined")),
        ("PersistenceInfo", json!("session")),
        ("ClientTimeout", json!(300)),
        ("PolicySet", json!([])),
        (
            "SecurityPolicy",
            json!({
                "SecurityPolicyId": "", "SecurityPolicyName": "", "SecurityPolicyType": 0,
                "TLSVersion": "", "SSLCiphers": [],
            }),
        ),
    ];
    for (field, value) in expected {
        assert_eq!(vs_tcp[field], value, "{field} in {vs_tcp}");
    }

    // Listing and not-found conventions: an unknown VServer (or one of another ULB) on a known
    // ULB is an empty page; an unknown ULB is 4103.
    #[rustfmt::skip]
    let pages: &[Listing] = &[
        (&[("ULBId", &ulb)], 2, vec![&https, &tcp]),
        (&[("ULBId", &ulb), ("Offset", "1"), ("Limit", "1")], 2, vec![&tcp]),
        (&[("VServerId", &tcp)], 1, vec![&tcp]),
        (&[("ULBId", &ulb), ("VServerId", &tcp), ("Limit", "1")], 1, vec![&tcp]),
        (&[("ULBId", &ulb), ("VServerId", "vserver-nosuchid")], 0, vec![]),
        (&[("ULBId", &other), ("VServerId", &https)], 0, vec![]),
        (&[("ULBId", &other)], 0, vec![]),
    ];
    for (params, total, expected) in pages {
        let answer = server.ok("DescribeVServer", params).await;
        let expected = expected.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            listed(&answer, "VServerId"),
            (*total, expected),
            "{params:?}"
        );
    }
    server
        .fails(
            "DescribeVServer",
            &[("ULBId", "ulb-nosuchid"), ("VServerId", &https)],
            4103,
        )
        .await;
    let simple = server.ok("DescribeULBSimple", &[("ULBId", &ulb)]).await;
    assert_eq!(simple["DataSet"][0]["VServerCount"], 2, "{simple}");

    // Updates change only what is sent, and check the result as a whole.
    server
        .ok(
            "UpdateVServerAttribute",
            &[
                ("ULBId", &ulb),
                ("VServerId", &https),
                ("VServerName", "web-2"),
                ("ClientTimeout", "120"),
                ("MonitorType", "Path"),
                ("Protocol", "HTTPS"),
            ],
        )
        .await;
    let vs = one_vserver(&server, &ulb, &https).await;
    let expected = [
        ("VServerName", json!("web-2")),
        ("ClientTimeout", json!(120)),
        ("MonitorType", json!("Path")),
        ("Path", json!("/")),
        ("Method", json!("Roundrobin")),
        ("FrontendPort", json!(8443)),
    ];
    for (field, value) in expected {
        assert_eq!(vs[field], value, "{field} in {vs}");
    }
    server
        .ok(
            "UpdateVServerAttribute",
            &[
                ("ULBId", &ulb),
                ("VServerId", &https),
                ("PersistenceType", "UserDefined"),
                ("PersistenceInfo", "k"),
                ("Path", "/health"),
                ("Domain", "example.test"),
            ],
        )
        .await;
    server
        .ok(
            "UpdateVServerAttribute",
            &[
                ("ULBId", &ulb),
                ("VServerId", &https),
                ("Method", "Leastconn"),
            ],
        )
        .await;
    let vs = one_vserver(&server, &ulb, &https).await;
    let expected = [
        ("Method", "Leastconn"),
        ("PersistenceType", "UserDefined"),
        ("PersistenceInfo", "k"),
        ("Path", "/health"),
        ("Domain", "example.test"),
        ("VServerName", "web-2"),
    ];
    for (field, value) in expected {
        assert_eq!(vs[field], value, "{field} in {vs}");
    }
    server
        .ok(
            "UpdateVServerAttribute",
            &[
                ("ULBId", &ulb),
                ("VServerId", &https),
                ("PersistenceType", "None"),
            ],
        )
        .await;
    assert_eq!(
        one_vserver(&server, &ulb, &https).await["PersistenceInfo"],
        ""
    );

    // A bound certificate shows in SSLSet, survives attribute updates and goes with the VServer.
    let (cert, key) = support::cert(&["clb.example.test"]);
    let ssl = text(
        &server
            .ok(
                "CreateSSL",
                &[("SSLName", "c"), ("UserCert", &cert), ("PrivateKey", &key)],
            )
            .await["SSLId"],
    );
    server
        .ok(
            "BindSSL",
            &[("ULBId", &ulb), ("VServerId", &https), ("SSLId", &ssl)],
        )
        .await;
    server
        .ok(
            "UpdateVServerAttribute",
            &[
                ("ULBId", &ulb),
                ("VServerId", &https),
                ("ClientTimeout", "30"),
            ],
        )
        .await;
    let vs = one_vserver(&server, &ulb, &https).await;
    assert_vserver_shape(&vs);
    assert_eq!(ids(&vs["SSLSet"], "SSLId"), [ssl.as_str()]);
    assert_eq!(
        vs["SSLSet"][0]["BindedTargetSet"][0]["VServerName"], "web-2",
        "{vs}"
    );
    assert_eq!(one_ulb(&server, &ulb).await["VServerSet"][0], vs);

    server
        .ok("DeleteVServer", &[("ULBId", &ulb), ("VServerId", &https)])
        .await;
    let gone = server
        .ok("DescribeVServer", &[("ULBId", &ulb), ("VServerId", &https)])
        .await;
    assert_eq!(
        (&gone["TotalCount"], &gone["DataSet"]),
        (&json!(0), &json!([]))
    );
    let item = &server.ok("DescribeSSL", &[("SSLId", &ssl)]).await["DataSet"][0];
    assert_eq!(item["BindedTargetSet"], json!([]), "{item}");
    server.ok("DeleteSSL", &[("SSLId", &ssl)]).await;
    server
        .fails(
            "DeleteVServer",
            &[("ULBId", &ulb), ("VServerId", &https)],
            4143,
        )
        .await;
    // Its port is free again.
    create_vserver(
        &server,
        &[
            ("ULBId", &ulb),
            ("Protocol", "HTTPS"),
            ("FrontendPort", "8443"),
        ],
    )
    .await;
}

#[tokio::test]
async fn backends_allocate_update_release() {
    let server = support::spawn().await;
    let ulb = create_ulb(&server, &[]).await;
    let vs = create_vserver(
        &server,
        &[
            ("ULBId", &ulb),
            ("Protocol", "HTTP"),
            ("FrontendPort", "8080"),
        ],
    )
    .await;

    let allocate = |params: Vec<(&'static str, &'static str)>| {
        let (server, ulb, vs) = (&server, ulb.clone(), vs.clone());
        async move {
            let mut all = vec![("ULBId", ulb.as_str()), ("VServerId", vs.as_str())];
            all.extend(params);
            let answer = server.ok("AllocateBackend", &all).await;
            let id = text(&answer["BackendId"]);
            assert!(id.starts_with("backend-"), "{answer}");
            id
        }
    };
    let by_resource_ip = allocate(vec![
        ("ResourceType", "IP"),
        ("ResourceIP", "127.0.0.1"),
        ("Port", "8081"),
        ("Weight", "5"),
    ])
    .await;
    let by_resource_id =
        allocate(vec![("ResourceType", "UHost"), ("ResourceId", "10.0.0.7")]).await;
    let by_private_ip = allocate(vec![
        ("PrivateIP", "10.0.0.8"),
        ("Enabled", "0"),
        ("IsBackup", "1"),
        ("Weight", "0"),
    ])
    .await;

    let view = one_vserver(&server, &ulb, &vs).await;
    assert_vserver_shape(&view);
    let backends = view["BackendSet"].as_array().unwrap();
    assert_eq!(
        ids(&view["BackendSet"], "BackendId"),
        [
            by_resource_ip.clone(),
            by_resource_id.clone(),
            by_private_ip.clone()
        ]
    );
    let summary: Vec<Value> = backends
        .iter()
        .map(|b| {
            json!([
                b["ResourceType"],
                b["ResourceId"],
                b["PrivateIP"],
                b["Port"],
                b["Weight"],
                b["Enabled"],
                b["IsBackup"]
            ])
        })
        .collect();
    assert_eq!(
        summary,
        [
            json!(["IP", "", "127.0.0.1", 8081, 5, 1, 0]),
            json!(["UHost", "10.0.0.7", "10.0.0.7", 80, 1, 1, 0]),
            json!(["UHost", "", "10.0.0.8", 80, 0, 0, 1]),
        ]
    );
    for backend in backends {
        assert!(
            matches!(backend["Status"].as_i64(), Some(0 | 1)),
            "{backend}"
        );
    }
    assert!(matches!(view["Status"].as_i64(), Some(0..=2)), "{view}");
    let policy = &view["PolicySet"][0];
    assert_eq!(policy["TotalCount"], 3, "{policy}");
    assert_eq!(
        ids(&policy["BackendSet"], "BackendId"),
        ids(&view["BackendSet"], "BackendId")
    );

    server
        .ok(
            "UpdateBackendAttribute",
            &[
                ("ULBId", &ulb),
                ("BackendId", &by_resource_id),
                ("Port", "9090"),
                ("Weight", "50"),
                ("Enabled", "0"),
                ("IsBackup", "1"),
            ],
        )
        .await;
    server
        .ok(
            "UpdateBackendAttribute",
            &[
                ("ULBId", &ulb),
                ("BackendId", &by_private_ip),
                ("Enabled", "1"),
            ],
        )
        .await;
    let view = one_vserver(&server, &ulb, &vs).await;
    let summary: Vec<Value> = view["BackendSet"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| json!([b["Port"], b["Weight"], b["Enabled"], b["IsBackup"]]))
        .collect();
    assert_eq!(
        summary,
        [
            json!([8081, 5, 1, 0]),
            json!([9090, 50, 0, 1]),
            json!([80, 0, 1, 1])
        ]
    );

    server
        .ok(
            "ReleaseBackend",
            &[("ULBId", &ulb), ("BackendId", &by_resource_id)],
        )
        .await;
    let view = one_vserver(&server, &ulb, &vs).await;
    assert_eq!(
        ids(&view["BackendSet"], "BackendId"),
        [by_resource_ip, by_private_ip]
    );
    assert_eq!(view["PolicySet"][0]["TotalCount"], 2, "{view}");
    server
        .fails(
            "ReleaseBackend",
            &[("ULBId", &ulb), ("BackendId", &by_resource_id)],
            230,
        )
        .await;
}

/// The ids a case's parameters may name: `{outer}` (RequestProxy ULB), `{inner}` (PacketsTransmit
/// ULB), `{vs}` (HTTPS VServer on `{outer}` port 8443), `{backend}` (a backend of `{vs}`),
/// `{long}` (51 characters).
struct World {
    server: Server,
    outer: String,
    inner: String,
    vs: String,
    backend: String,
}

impl World {
    async fn new() -> World {
        let server = support::spawn().await;
        let outer = create_ulb(&server, &[("ULBName", "outer")]).await;
        let inner = create_ulb(&server, &[("ULBName", "inner"), ("InnerMode", "Yes")]).await;
        let vs = create_vserver(
            &server,
            &[
                ("ULBId", &outer),
                ("Protocol", "HTTPS"),
                ("FrontendPort", "8443"),
            ],
        )
        .await;
        let backend = text(
            &server
                .ok(
                    "AllocateBackend",
                    &[
                        ("ULBId", &outer),
                        ("VServerId", &vs),
                        ("ResourceIP", "10.0.0.1"),
                    ],
                )
                .await["BackendId"],
        );
        World {
            server,
            outer,
            inner,
            vs,
            backend,
        }
    }

    fn fill(&self, value: &str) -> String {
        value
            .replace("{outer}", &self.outer)
            .replace("{inner}", &self.inner)
            .replace("{vs}", &self.vs)
            .replace("{backend}", &self.backend)
            .replace("{long}", &"n".repeat(51))
    }

    /// Everything a client can read about the CLBs, minus health (it may change on its own).
    async fn state(&self) -> Value {
        let mut all = json!([
            self.server.ok("DescribeULB", &[]).await["DataSet"],
            self.server.ok("DescribeULBSimple", &[]).await["DataSet"],
        ]);
        strip_status(&mut all);
        all
    }
}

fn strip_status(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("Status");
            map.values_mut().for_each(strip_status);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_status),
        _ => {}
    }
}

/// One refused call: action, parameters (with `World` placeholders), RetCode, and a text the
/// message must contain (for 230, the bracketed parameter name).
type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    i64,
    &'static str,
);

#[rustfmt::skip]
const REFUSED: &[Case] = &[
    ("CreateULB", &[("ULBName", "{long}")], 4114, "ULBName"),
    ("CreateULB", &[("OuterMode", "Maybe")], 230, "[OuterMode]"),
    ("CreateULB", &[("OuterMode", "Yes"), ("InnerMode", "Yes")], 230, "[InnerMode]"),
    ("CreateULB", &[("ListenType", "Fast")], 230, "[ListenType]"),
    ("CreateULB", &[("ChargeType", "Weekly")], 230, "[ChargeType]"),
    ("CreateULB", &[("IPVersion", "IPv6")], 230, "[IPVersion]"),
    ("CreateULB", &[("PrivateIp", "10.0.0.1")], 230, "[PrivateIp]"),
    ("DescribeULB", &[("Limit", "ten")], 230, "[Limit]"),
    ("DescribeULB", &[("Offset", "-1")], 230, "[Offset]"),
    ("DescribeULBSimple", &[("Limit", "1.5")], 230, "[Limit]"),
    ("UpdateULBAttribute", &[("Name", "x")], 230, "[ULBId]"),
    ("UpdateULBAttribute", &[("ULBId", "ulb-nosuchid"), ("Name", "x")], 4103, "ulb-nosuchid"),
    ("UpdateULBAttribute", &[("ULBId", "{outer}"), ("Name", "{long}")], 4114, "Name"),
    ("UpdateULBAttribute", &[("ULBId", "{outer}"), ("Name", "x"), ("EnableLog", "1")], 230, "[EnableLog]"),
    ("UpdateULBAttribute", &[("ULBId", "{outer}"), ("IsWAFOn", "Yes")], 230, "[IsWAFOn]"),
    ("DeleteULB", &[], 230, "[ULBId]"),
    ("DeleteULB", &[("ULBId", "ulb-nosuchid")], 4103, "ulb-nosuchid"),
    ("DeleteULB", &[("ULBId", "{outer}"), ("ReleaseEip", "maybe")], 230, "[ReleaseEip]"),
    ("CreateVServer", &[("FrontendPort", "8444")], 230, "[ULBId]"),
    ("CreateVServer", &[("ULBId", "ulb-nosuchid"), ("FrontendPort", "8444")], 4103, "ulb-nosuchid"),
    ("CreateVServer", &[("ULBId", "{outer}"), ("Protocol", "SCTP"), ("FrontendPort", "8444")], 230, "[Protocol]"),
    ("CreateVServer", &[("ULBId", "{outer}"), ("FrontendPort", "0")], 230, "[FrontendPort]"),
    ("CreateVServer", &[("ULBId", "{outer}"), ("FrontendPort", "65536")], 230, "[FrontendPort]"),
    ("CreateVServer", &[("ULBId", "{outer}"), ("FrontendPort", "http")], 230, "[FrontendPort]"),
    ("CreateVServer", &[("ULBId", "{outer}"), ("Protocol", "HTTPS"), ("FrontendPort", "8443")], 4107, "8443"),
    ("CreateVServer", &[("ULBId", "{outer}"), ("Protocol", "TCP"), ("FrontendPort", "8443")], 4107, "8443"),
    ("CreateVServer", &[("ULBId", "{inner}"), ("Protocol", "HTTPS"), ("FrontendPort", "8444")], 4144, "HTTPS"),
    ("CreateVServer", &[("ULBId", "{inner}"), ("FrontendPort", "8444")], 4144, "HTTP"),
    ("CreateVServer", &[("ULBId", "{outer}"), ("Protocol", "UDP"), ("FrontendPort", "8444")], 230, "[Protocol]"),
    ("CreateVServer", &[("ULBId", "{outer}"), ("ListenType", "PacketsTransmit"), ("FrontendPort", "8444")], 230, "[ListenType]"),
    ("CreateVServer", &[("ULBId", "{outer}"), ("VServerName", "{long}"), ("FrontendPort", "8444")], 4114, "VServerName"),
    ("CreateVServer", &[("ULBId", "{outer}"), ("Method", "Random"), ("FrontendPort", "8444")], 230, "[Method]"),
    ("CreateVServer", &[("ULBId", "{outer}"), ("Method", "ConsistentHash"), ("FrontendPort", "8444")], 230, "[Method]"),
    ("CreateVServer", &[("ULBId", "{inner}"), ("Protocol", "TCP"), ("Method", "Leastconn"), ("FrontendPort", "8444")], 230, "[Method]"),
    ("CreateVServer", &[("ULBId", "{outer}"), ("PersistenceType", "Cookie"), ("FrontendPort", "8444")], 230, "[PersistenceType]"),
    ("CreateVServer", &[("ULBId", "{outer}"), ("PersistenceType", "UserDefined"), ("FrontendPort", "8444")], 230, "[PersistenceInfo]"),
    ("CreateVServer", &[("ULBId", "{outer}"), ("ClientTimeout", "0"), ("FrontendPort", "8444")], 230, "[ClientTimeout]"),
    ("CreateVServer", &[("ULBId", "{outer}"), ("ClientTimeout", "86401"), ("FrontendPort", "8444")], 230, "[ClientTimeout]"),
    ("CreateVServer", &[("ULBId", "{inner}"), ("Protocol", "TCP"), ("ClientTimeout", "30"), ("FrontendPort", "8444")], 230, "[ClientTimeout]"),
    ("CreateVServer", &[("ULBId", "{outer}"), ("MonitorType", "Ping"), ("FrontendPort", "8444")], 230, "[MonitorType]"),
    ("CreateVServer", &[("ULBId", "{outer}"), ("Protocol", "TCP"), ("MonitorType", "Path"), ("FrontendPort", "8444")], 230, "[MonitorType]"),
    ("CreateVServer", &[("ULBId", "{outer}"), ("MonitorType", "Path"), ("Path", "health"), ("FrontendPort", "8444")], 230, "[Path]"),
    ("CreateVServer", &[("ULBId", "{outer}"), ("EnableHTTP2", "1"), ("FrontendPort", "8444")], 230, "[EnableHTTP2]"),
    ("CreateVServer", &[("ULBId", "{outer}"), ("Protocol", "HTTPS"), ("EnableHTTP2", "2"), ("FrontendPort", "8444")], 230, "[EnableHTTP2]"),
    ("CreateVServer", &[("ULBId", "{outer}"), ("Protocol", "HTTPS"), ("ForwardPort", "443"), ("FrontendPort", "8444")], 230, "[ForwardPort]"),
    ("CreateVServer", &[("ULBId", "{outer}"), ("SecurityPolicyId", "security-x"), ("FrontendPort", "8444")], 230, "[SecurityPolicyId]"),
    ("DescribeVServer", &[], 230, "[ULBId]"),
    ("DescribeVServer", &[("ULBId", "ulb-nosuchid")], 4103, "ulb-nosuchid"),
    ("DescribeVServer", &[("ULBId", "{outer}"), ("Limit", "x")], 230, "[Limit]"),
    ("UpdateVServerAttribute", &[("ULBId", "{outer}")], 230, "[VServerId]"),
    ("UpdateVServerAttribute", &[("VServerId", "{vs}")], 230, "[ULBId]"),
    ("UpdateVServerAttribute", &[("ULBId", "ulb-nosuchid"), ("VServerId", "{vs}")], 4103, "ulb-nosuchid"),
    ("UpdateVServerAttribute", &[("ULBId", "{outer}"), ("VServerId", "vserver-nosuchid")], 4143, "vserver-nosuchid"),
    ("UpdateVServerAttribute", &[("ULBId", "{inner}"), ("VServerId", "{vs}"), ("VServerName", "x")], 4143, "{vs}"),
    ("UpdateVServerAttribute", &[("ULBId", "{outer}"), ("VServerId", "{vs}"), ("Protocol", "HTTP")], 230, "[Protocol]"),
    ("UpdateVServerAttribute", &[("ULBId", "{outer}"), ("VServerId", "{vs}"), ("VServerName", "{long}")], 4114, "VServerName"),
    ("UpdateVServerAttribute", &[("ULBId", "{outer}"), ("VServerId", "{vs}"), ("VServerName", "x"), ("ClientTimeout", "-1")], 230, "[ClientTimeout]"),
    ("UpdateVServerAttribute", &[("ULBId", "{outer}"), ("VServerId", "{vs}"), ("PersistenceType", "UserDefined")], 230, "[PersistenceInfo]"),
    ("UpdateVServerAttribute", &[("ULBId", "{outer}"), ("VServerId", "{vs}"), ("Method", "SourcePort")], 230, "[Method]"),
    ("DeleteVServer", &[("ULBId", "{outer}")], 230, "[VServerId]"),
    ("DeleteVServer", &[("ULBId", "ulb-nosuchid"), ("VServerId", "{vs}")], 4103, "ulb-nosuchid"),
    ("DeleteVServer", &[("ULBId", "{inner}"), ("VServerId", "{vs}")], 4143, "{vs}"),
    ("AllocateBackend", &[("ULBId", "{outer}"), ("ResourceIP", "10.0.0.2")], 230, "[VServerId]"),
    ("AllocateBackend", &[("ULBId", "{outer}"), ("VServerId", "{vs}")], 230, "[ResourceIP]"),
    ("AllocateBackend", &[("ULBId", "{outer}"), ("VServerId", "{vs}"), ("ResourceId", "uhost-abc")], 230, "[ResourceIP]"),
    ("AllocateBackend", &[("ULBId", "{outer}"), ("VServerId", "{vs}"), ("ResourceIP", "300.1.1.1")], 230, "[ResourceIP]"),
    ("AllocateBackend", &[("ULBId", "{outer}"), ("VServerId", "{vs}"), ("PrivateIP", "host")], 230, "[PrivateIP]"),
    ("AllocateBackend", &[("ULBId", "{outer}"), ("VServerId", "{vs}"), ("ResourceIP", "10.0.0.2"), ("Port", "0")], 230, "[Port]"),
    ("AllocateBackend", &[("ULBId", "{outer}"), ("VServerId", "{vs}"), ("ResourceIP", "10.0.0.2"), ("Weight", "101")], 230, "[Weight]"),
    ("AllocateBackend", &[("ULBId", "{outer}"), ("VServerId", "{vs}"), ("ResourceIP", "10.0.0.2"), ("Enabled", "2")], 230, "[Enabled]"),
    ("AllocateBackend", &[("ULBId", "{outer}"), ("VServerId", "{vs}"), ("ResourceIP", "10.0.0.2"), ("IsBackup", "yes")], 230, "[IsBackup]"),
    ("AllocateBackend", &[("ULBId", "{outer}"), ("VServerId", "{vs}"), ("ResourceIP", "10.0.0.2"), ("ResourceType", "Toaster")], 230, "[ResourceType]"),
    ("AllocateBackend", &[("ULBId", "ulb-nosuchid"), ("VServerId", "{vs}"), ("ResourceIP", "10.0.0.2")], 4103, "ulb-nosuchid"),
    ("AllocateBackend", &[("ULBId", "{outer}"), ("VServerId", "vserver-nosuchid"), ("ResourceIP", "10.0.0.2")], 4143, "vserver-nosuchid"),
    ("AllocateBackend", &[("ULBId", "{inner}"), ("VServerId", "{vs}"), ("ResourceIP", "10.0.0.2")], 4143, "{vs}"),
    ("ReleaseBackend", &[("ULBId", "{outer}")], 230, "[BackendId]"),
    ("ReleaseBackend", &[("ULBId", "{outer}"), ("BackendId", "backend-nosuchid")], 230, "[BackendId]"),
    ("ReleaseBackend", &[("ULBId", "{inner}"), ("BackendId", "{backend}")], 230, "[BackendId]"),
    ("ReleaseBackend", &[("ULBId", "ulb-nosuchid"), ("BackendId", "{backend}")], 4103, "ulb-nosuchid"),
    ("UpdateBackendAttribute", &[("ULBId", "{outer}"), ("Weight", "5")], 230, "[BackendId]"),
    ("UpdateBackendAttribute", &[("ULBId", "{outer}"), ("BackendId", "{backend}"), ("Weight", "101")], 230, "[Weight]"),
    ("UpdateBackendAttribute", &[("ULBId", "{outer}"), ("BackendId", "{backend}"), ("Port", "70000")], 230, "[Port]"),
    ("UpdateBackendAttribute", &[("ULBId", "{outer}"), ("BackendId", "{backend}"), ("Enabled", "yes")], 230, "[Enabled]"),
    ("UpdateBackendAttribute", &[("ULBId", "{outer}"), ("BackendId", "backend-nosuchid"), ("Weight", "5")], 230, "[BackendId]"),
    ("UpdateBackendAttribute", &[("ULBId", "ulb-nosuchid"), ("BackendId", "{backend}"), ("Weight", "5")], 4103, "ulb-nosuchid"),
];

#[tokio::test]
async fn bad_requests_answer_their_code_and_change_nothing() {
    let world = World::new().await;
    let before = world.state().await;
    // (action, params, RetCode, text the message must contain)
    for (action, params, code, needle) in REFUSED {
        let filled: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), world.fill(v)))
            .collect();
        let pairs: Vec<(&str, &str)> = filled
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let answer = world.server.fails(action, &pairs, *code).await;
        let message = text(&answer["Message"]);
        let needle = world.fill(needle);
        assert!(
            message.contains(&needle),
            "{action} {filled:?}: {message:?} should name {needle:?}"
        );
        if *code == 230 {
            assert!(
                message.starts_with("Params ["),
                "{action} {filled:?}: {message:?}"
            );
        }
    }
    assert_eq!(
        world.state().await,
        before,
        "a refused call changed the state"
    );
}

#[tokio::test]
async fn delete_ulb_takes_vservers_backends_and_bindings_with_it() {
    let server = support::spawn().await;
    let ulb = create_ulb(&server, &[]).await;
    let https = create_vserver(
        &server,
        &[
            ("ULBId", &ulb),
            ("Protocol", "HTTPS"),
            ("FrontendPort", "8443"),
        ],
    )
    .await;
    let http = create_vserver(
        &server,
        &[
            ("ULBId", &ulb),
            ("Protocol", "HTTP"),
            ("FrontendPort", "8080"),
        ],
    )
    .await;
    server
        .ok(
            "AllocateBackend",
            &[
                ("ULBId", &ulb),
                ("VServerId", &http),
                ("ResourceIP", "10.0.0.3"),
            ],
        )
        .await;
    let (cert, key) = support::cert(&["gone.example.test"]);
    let ssl = text(
        &server
            .ok(
                "CreateSSL",
                &[("SSLName", "c"), ("UserCert", &cert), ("PrivateKey", &key)],
            )
            .await["SSLId"],
    );
    server
        .ok(
            "BindSSL",
            &[("ULBId", &ulb), ("VServerId", &https), ("SSLId", &ssl)],
        )
        .await;
    server.fails("DeleteSSL", &[("SSLId", &ssl)], 4108).await;

    server.ok("DeleteULB", &[("ULBId", &ulb)]).await;
    for vserver in [&https, &http] {
        let answer = server
            .ok("DescribeVServer", &[("VServerId", vserver)])
            .await;
        assert_eq!(answer["DataSet"], json!([]), "{answer}");
    }
    let item = &server.ok("DescribeSSL", &[("SSLId", &ssl)]).await["DataSet"][0];
    assert_eq!(item["BindedTargetSet"], json!([]), "{item}");
    server.ok("DeleteSSL", &[("SSLId", &ssl)]).await;
}

#[tokio::test]
async fn a_vserver_listens_on_its_ulb_address_until_deleted() {
    let server = support::spawn().await;
    let ulb = create_ulb(&server, &[]).await;
    let address = text(&one_ulb(&server, &ulb).await["PrivateIP"]);
    let vs = create_vserver(
        &server,
        &[
            ("ULBId", &ulb),
            ("Protocol", "HTTP"),
            ("FrontendPort", "8080"),
        ],
    )
    .await;
    let target = format!("{address}:8080");
    tokio::net::TcpStream::connect(&target)
        .await
        .unwrap_or_else(|err| panic!("CreateVServer returned but {target} does not accept: {err}"));

    server
        .ok("DeleteVServer", &[("ULBId", &ulb), ("VServerId", &vs)])
        .await;
    assert!(
        tokio::net::TcpStream::connect(&target).await.is_err(),
        "DeleteVServer returned but {target} still accepts"
    );
}
