//! ALB actions end to end (spec §5.3): load balancers, listeners with their default and extension
//! certificates, targets; every response checked field by field against the SDK's JSON types,
//! every failure against its RetCode and the parameter its message names.

use serde_json::Value;

use crate::support;

/// Request parameters as the tables below write them.
type Pairs<'a> = Vec<(&'a str, &'a str)>;
type OwnedPairs = Vec<(&'static str, String)>;

// ---- the one helper that calls the API ---------------------------------------------------------

/// A running server (the real `certbind serve`) and the ALB fixtures built through its API.
struct Api {
    server: support::Server,
}

impl Api {
    async fn start() -> Api {
        Api {
            server: support::spawn().await,
        }
    }

    async fn call(&self, action: &str, params: &[(&str, &str)]) -> Value {
        self.server.call(action, params).await
    }

    /// Calls and insists on success.
    async fn ok(&self, action: &str, params: &[(&str, &str)]) -> Value {
        let answer = self.call(action, params).await;
        assert_eq!(answer["RetCode"], 0, "{action} {params:?} → {answer}");
        assert_eq!(answer["Action"], format!("{action}Response"));
        answer
    }

    /// Calls and insists on failure with `code`; returns the message.
    async fn fails(&self, code: i64, action: &str, params: &[(&str, &str)]) -> String {
        let answer = self.call(action, params).await;
        assert_eq!(answer["RetCode"], code, "{action} {params:?} → {answer}");
        answer["Message"].as_str().unwrap_or_default().to_string()
    }

    async fn lb(&self, extra: &[(&str, &str)]) -> String {
        let params = merged(
            &[("VPCId", "uvnet-test"), ("SubnetId", "subnet-test")],
            extra,
        );
        let answer = self.ok("CreateLoadBalancer", &params).await;
        let id = answer["LoadBalancerId"]
            .as_str()
            .expect("LoadBalancerId")
            .to_string();
        assert!(id.starts_with("alb-"), "{id}");
        id
    }

    /// A fresh self-signed certificate uploaded with CreateSSL.
    async fn ssl(&self, domain: &str) -> String {
        let (cert, key) = support::cert(&[domain]);
        let answer = self
            .ok(
                "CreateSSL",
                &[
                    ("SSLName", domain),
                    ("SSLType", "Pem"),
                    ("UserCert", &cert),
                    ("PrivateKey", &key),
                ],
            )
            .await;
        answer["SSLId"].as_str().expect("SSLId").to_string()
    }

    async fn listener(&self, lb: &str, protocol: &str, port: u16, ssl: Option<&str>) -> String {
        let port = port.to_string();
        let mut params = vec![
            ("LoadBalancerId", lb),
            ("ListenerProtocol", protocol),
            ("ListenerPort", port.as_str()),
        ];
        if let Some(ssl) = ssl {
            params.push(("Certificates.0", ssl));
        }
        let answer = self.ok("CreateListener", &params).await;
        let id = answer["ListenerId"]
            .as_str()
            .expect("ListenerId")
            .to_string();
        assert!(id.starts_with("als-"), "{id}");
        id
    }

    /// DescribeListeners of one listener, as certimate asks for it.
    async fn describe_listener(&self, lb: &str, listener: &str) -> Value {
        let answer = self
            .ok(
                "DescribeListeners",
                &[
                    ("LoadBalancerId", lb),
                    ("ListenerId", listener),
                    ("Limit", "1"),
                ],
            )
            .await;
        assert_eq!(answer["TotalCount"], 1, "{answer}");
        answer["Listeners"][0].clone()
    }

    async fn describe_lb(&self, lb: &str, detail: bool) -> Value {
        let detail = if detail { "true" } else { "false" };
        let answer = self
            .ok(
                "DescribeLoadBalancers",
                &[("LoadBalancerIds.0", lb), ("ShowDetail", detail)],
            )
            .await;
        assert_eq!(answer["TotalCount"], 1, "{answer}");
        answer["LoadBalancers"][0].clone()
    }

    async fn listener_count(&self, lb: &str) -> u64 {
        let answer = self
            .ok("DescribeListeners", &[("LoadBalancerId", lb)])
            .await;
        answer["TotalCount"].as_u64().expect("TotalCount")
    }
}

/// `base` with `extra` added, an `extra` key replacing the same key of `base` (a request carries
/// each key once: the client signs every pair it sends).
fn merged<'a>(
    base: &[(&'a str, &'a str)],
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut params: Vec<(&str, &str)> = base
        .iter()
        .filter(|(key, _)| !extra.iter().any(|(k, _)| k == key))
        .copied()
        .collect();
    params.extend_from_slice(extra);
    params
}

/// A port the host is not using right now (the API needs a real port; the OS picks it).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .expect("an ephemeral port")
        .port()
}

// ---- JSON types: the Go SDK's contract (spec §2.5) ---------------------------------------------

#[derive(Debug, Clone, Copy)]
enum T {
    Str,
    Int,
    Bool,
    Arr,
    Obj,
}

fn has_type(value: &Value, t: T) -> bool {
    match t {
        T::Str => value.is_string(),
        T::Int => value.is_i64() || value.is_u64(),
        T::Bool => value.is_boolean(),
        T::Arr => value.is_array(),
        T::Obj => value.is_object(),
    }
}

/// Every field of `schema` is present in `value` with its type.
fn assert_shape(what: &str, value: &Value, schema: &[(&str, T)]) {
    for (name, t) in schema {
        let field = &value[*name];
        assert!(
            has_type(field, *t),
            "{what}.{name} should be {t:?}: {value}"
        );
    }
}

const LOAD_BALANCER: &[(&str, T)] = &[
    ("AccessLogConfig", T::Obj),
    ("AutoRenewEnabled", T::Bool),
    ("ChargeType", T::Str),
    ("CreateTime", T::Int),
    ("Firewall", T::Obj),
    ("IPInfos", T::Arr),
    ("IPVersion", T::Str),
    ("Listeners", T::Arr),
    ("LoadBalancerId", T::Str),
    ("Name", T::Str),
    ("PurchaseValue", T::Int),
    ("Remark", T::Str),
    ("SecGroup", T::Arr),
    ("SnatIPs", T::Arr),
    ("Status", T::Str),
    ("SubnetId", T::Str),
    ("Tag", T::Str),
    ("Type", T::Str),
    ("VPCId", T::Str),
];
const ACCESS_LOG: &[(&str, T)] = &[
    ("Enabled", T::Bool),
    ("US3BucketName", T::Str),
    ("US3TokenId", T::Str),
];
const FIREWALL: &[(&str, T)] = &[("FirewallId", T::Str), ("FirewallName", T::Str)];
const IP_INFO: &[(&str, T)] = &[
    ("AddressType", T::Str),
    ("Bandwidth", T::Int),
    ("BandwidthType", T::Int),
    ("IP", T::Str),
    ("IPVersion", T::Str),
    ("Id", T::Str),
    ("OperatorName", T::Str),
];
const LISTENER: &[(&str, T)] = &[
    ("Certificates", T::Arr),
    ("CompressionEnabled", T::Bool),
    ("HTTP2Enabled", T::Bool),
    ("HealthCheckConfig", T::Obj),
    ("IdleTimeout", T::Int),
    ("ListenerId", T::Str),
    ("ListenerPort", T::Int),
    ("ListenerProtocol", T::Str),
    ("Name", T::Str),
    ("RedirectEnabled", T::Bool),
    ("RedirectPort", T::Int),
    ("Remark", T::Str),
    ("Rules", T::Arr),
    ("Scheduler", T::Str),
    ("SecurityPolicyId", T::Str),
    ("State", T::Str),
    ("StickinessConfig", T::Obj),
    ("TargetProtocol", T::Str),
    ("Targets", T::Arr),
];
const CERTIFICATE: &[(&str, T)] = &[("IsDefault", T::Bool), ("SSLId", T::Str)];
const HEALTH_CHECK: &[(&str, T)] = &[
    ("Domain", T::Str),
    ("DownCounts", T::Int),
    ("Enabled", T::Bool),
    ("HTTPVersion", T::Str),
    ("Interval", T::Int),
    ("Method", T::Str),
    ("Path", T::Str),
    ("Port", T::Int),
    ("ResponseCode", T::Str),
    ("TimeOut", T::Int),
    ("Type", T::Str),
    ("UpCounts", T::Int),
];
const STICKINESS: &[(&str, T)] = &[
    ("CookieName", T::Str),
    ("Enabled", T::Bool),
    ("Type", T::Str),
];
const TARGET: &[(&str, T)] = &[
    ("Enabled", T::Bool),
    ("Id", T::Str),
    ("IsBackup", T::Bool),
    ("Port", T::Int),
    ("ResourceIP", T::Str),
    ("ResourceId", T::Str),
    ("ResourceName", T::Str),
    ("ResourceType", T::Str),
    ("State", T::Str),
    ("SubnetId", T::Str),
    ("VPCId", T::Str),
    ("Weight", T::Int),
];
const RULE: &[(&str, T)] = &[
    ("IsDefault", T::Bool),
    ("Pass", T::Bool),
    ("RuleActions", T::Arr),
    ("RuleConditions", T::Arr),
    ("RuleId", T::Str),
];
const RULE_ACTION: &[(&str, T)] = &[
    ("BackendConnectionConfig", T::Obj),
    ("CorsConfig", T::Obj),
    ("FixedResponseConfig", T::Obj),
    ("ForwardConfig", T::Obj),
    ("InsertHeaderConfig", T::Obj),
    ("Order", T::Int),
    ("ProxyBufferingConfig", T::Obj),
    ("RemoveHeaderConfig", T::Obj),
    ("Type", T::Str),
];

fn assert_load_balancer(lb: &Value) {
    assert_shape("LoadBalancer", lb, LOAD_BALANCER);
    assert_shape("AccessLogConfig", &lb["AccessLogConfig"], ACCESS_LOG);
    assert_shape("Firewall", &lb["Firewall"], FIREWALL);
    for info in lb["IPInfos"].as_array().into_iter().flatten() {
        assert_shape("IPInfo", info, IP_INFO);
    }
    for listener in lb["Listeners"].as_array().into_iter().flatten() {
        assert_listener(listener);
    }
}

fn assert_listener(listener: &Value) {
    assert_shape("Listener", listener, LISTENER);
    assert_shape(
        "HealthCheckConfig",
        &listener["HealthCheckConfig"],
        HEALTH_CHECK,
    );
    assert_shape(
        "StickinessConfig",
        &listener["StickinessConfig"],
        STICKINESS,
    );
    for certificate in listener["Certificates"].as_array().into_iter().flatten() {
        assert_shape("Certificate", certificate, CERTIFICATE);
    }
    let targets = listener["Targets"].as_array().expect("Targets");
    for target in targets {
        assert_shape("Target", target, TARGET);
    }
    for rule in listener["Rules"].as_array().into_iter().flatten() {
        assert_shape("Rule", rule, RULE);
        for action in rule["RuleActions"].as_array().into_iter().flatten() {
            assert_shape("RuleAction", action, RULE_ACTION);
        }
    }
    // The listener's state is its targets' states summed up.
    let healthy = targets.iter().filter(|t| t["State"] == "Healthy").count();
    let expected = match (targets.len(), healthy) {
        (0, _) => "None",
        (all, up) if up == all => "Healthy",
        (_, 0) => "Unhealthy",
        _ => "PartialHealth",
    };
    assert_eq!(listener["State"], expected, "{listener}");
}

/// A listener without its health states, which the data plane's checks change at any time.
fn configuration(listener: &Value) -> Value {
    let mut listener = listener.clone();
    if let Some(object) = listener.as_object_mut() {
        object.remove("State");
    }
    for target in listener["Targets"].as_array_mut().into_iter().flatten() {
        if let Some(object) = target.as_object_mut() {
            object.remove("State");
        }
    }
    listener
}

/// `(SSLId, IsDefault)` in the order DescribeListeners lists them.
fn certificates(listener: &Value) -> Vec<(String, bool)> {
    listener["Certificates"]
        .as_array()
        .expect("Certificates")
        .iter()
        .map(|c| {
            let is_default = c["IsDefault"].as_bool().expect("IsDefault is a JSON bool");
            (c["SSLId"].as_str().expect("SSLId").to_string(), is_default)
        })
        .collect()
}

fn ids(items: &Value, key: &str) -> Vec<String> {
    items
        .as_array()
        .expect("an array")
        .iter()
        .map(|item| item[key].as_str().expect("an id").to_string())
        .collect()
}

// ---- load balancers ----------------------------------------------------------------------------

#[tokio::test]
async fn load_balancer_lifecycle() {
    let api = Api::start().await;
    let lb = api.lb(&[]).await;

    let shown = api.describe_lb(&lb, false).await;
    assert_load_balancer(&shown);
    for (field, expected) in [
        ("Name", "lb"),
        ("Tag", "Default"),
        ("Remark", ""),
        ("Type", "Application"),
        ("ChargeType", "Month"),
        ("IPVersion", "IPv4"),
        ("Status", "Normal"),
        ("VPCId", "uvnet-test"),
        ("SubnetId", "subnet-test"),
    ] {
        assert_eq!(shown[field], expected, "{field}: {shown}");
    }
    assert_eq!(shown["Listeners"], serde_json::json!([]));
    assert_eq!(shown["SnatIPs"], serde_json::json!([]));
    let infos = shown["IPInfos"].as_array().expect("IPInfos");
    assert_eq!(infos.len(), 1, "{shown}");
    let address = infos[0]["IP"].as_str().expect("IP");
    assert!(address.parse::<std::net::Ipv4Addr>().is_ok(), "{address}");
    assert_eq!(infos[0]["AddressType"], "Intranet");
    // The address id is stable: derived from the load balancer id.
    assert_eq!(
        api.describe_lb(&lb, false).await["IPInfos"][0]["Id"],
        infos[0]["Id"]
    );

    api.ok(
        "UpdateLoadBalancerAttribute",
        &[
            ("LoadBalancerId", &lb),
            ("Name", "renamed"),
            ("Remark", "a note"),
            ("Tag", "web"),
        ],
    )
    .await;
    let shown = api.describe_lb(&lb, false).await;
    assert_eq!(
        (&shown["Name"], &shown["Remark"], &shown["Tag"]),
        (&"renamed".into(), &"a note".into(), &"web".into())
    );
    // Only what is given changes.
    api.ok(
        "UpdateLoadBalancerAttribute",
        &[("LoadBalancerId", &lb), ("Remark", "other")],
    )
    .await;
    let shown = api.describe_lb(&lb, false).await;
    assert_eq!(
        (&shown["Name"], &shown["Remark"]),
        (&"renamed".into(), &"other".into())
    );

    api.ok("DeleteLoadBalancer", &[("LoadBalancerId", &lb)])
        .await;
    let gone = api
        .ok("DescribeLoadBalancers", &[("LoadBalancerIds.0", &lb)])
        .await;
    assert_eq!(
        (&gone["TotalCount"], &gone["LoadBalancers"]),
        (&0.into(), &serde_json::json!([]))
    );
    api.fails(4103, "DeleteLoadBalancer", &[("LoadBalancerId", &lb)])
        .await;
    api.fails(
        4103,
        "UpdateLoadBalancerAttribute",
        &[("LoadBalancerId", &lb), ("Name", "x")],
    )
    .await;
}

#[tokio::test]
async fn load_balancer_requests_are_validated_before_anything_is_written() {
    let api = Api::start().await;
    let long = "n".repeat(256);
    let vpc = [("VPCId", "uvnet-1"), ("SubnetId", "subnet-1")];
    let cases: Vec<(Pairs, &str)> = vec![
        (vec![("SubnetId", "subnet-1")], "VPCId"),
        (vec![("VPCId", "uvnet-1")], "SubnetId"),
        (vec![("VPCId", ""), ("SubnetId", "subnet-1")], "VPCId"),
        ([&vpc[..], &[("Type", "Network")]].concat(), "Type"),
        ([&vpc[..], &[("Type", "Classic")]].concat(), "Type"),
        ([&vpc[..], &[("IPVersion", "IPv6")]].concat(), "IPVersion"),
        ([&vpc[..], &[("IPVersion", "IPv5")]].concat(), "IPVersion"),
        (
            [&vpc[..], &[("ChargeType", "Weekly")]].concat(),
            "ChargeType",
        ),
        ([&vpc[..], &[("Name", long.as_str())]].concat(), "Name"),
        ([&vpc[..], &[("Quantity", "many")]].concat(), "Quantity"),
    ];
    for (params, name) in &cases {
        let message = api.fails(230, "CreateLoadBalancer", params).await;
        assert!(
            message.starts_with(&format!("Params [{name}] not available")),
            "{params:?}: {message}"
        );
    }
    let listed = api.ok("DescribeLoadBalancers", &[]).await;
    assert_eq!(
        listed["TotalCount"], 0,
        "a failed create wrote something: {listed}"
    );

    let lb = api.lb(&[]).await;
    for (params, name) in [
        (vec![("Name", "x")], "LoadBalancerId"),
        (
            vec![("LoadBalancerId", lb.as_str()), ("Name", long.as_str())],
            "Name",
        ),
        (
            vec![
                ("LoadBalancerId", lb.as_str()),
                ("AccessLogConfig.Enabled", "true"),
            ],
            "AccessLogConfig.Enabled",
        ),
    ] {
        let message = api.fails(230, "UpdateLoadBalancerAttribute", &params).await;
        assert!(message.contains(&format!("[{name}]")), "{message}");
    }
    assert_eq!(api.describe_lb(&lb, false).await["Name"], "lb");
    api.fails(230, "DeleteLoadBalancer", &[]).await;
}

#[tokio::test]
async fn describe_load_balancers_filters_and_pages() {
    let api = Api::start().await;
    let a = api
        .lb(&[
            ("Name", "a"),
            ("VPCId", "uvnet-1"),
            ("SubnetId", "subnet-1"),
        ])
        .await;
    let b = api
        .lb(&[
            ("Name", "b"),
            ("VPCId", "uvnet-1"),
            ("SubnetId", "subnet-2"),
        ])
        .await;
    let c = api
        .lb(&[
            ("Name", "c"),
            ("VPCId", "uvnet-2"),
            ("SubnetId", "subnet-3"),
        ])
        .await;

    // (params, expected ids in order, expected TotalCount)
    let cases: Vec<(Pairs, Vec<&str>, u64)> = vec![
        (vec![], vec![&a, &b, &c], 3),
        // Limit and Offset arrive as strings of digits (string-typed in both SDKs).
        (vec![("Limit", "2"), ("Offset", "0")], vec![&a, &b], 3),
        (vec![("Limit", "2"), ("Offset", "2")], vec![&c], 3),
        (vec![("Offset", "5")], vec![], 3),
        (vec![("VPCId", "uvnet-1")], vec![&a, &b], 2),
        (
            vec![("VPCId", "uvnet-1"), ("Limit", "1"), ("Offset", "1")],
            vec![&b],
            2,
        ),
        (vec![("SubnetId", "subnet-3")], vec![&c], 1),
        (
            vec![("VPCId", "uvnet-1"), ("SubnetId", "subnet-3")],
            vec![],
            0,
        ),
        // With ids, every filter except Type is ignored; unknown ids are simply not listed.
        (
            vec![
                ("LoadBalancerIds.0", &c),
                ("LoadBalancerIds.1", "alb-unknown"),
                ("LoadBalancerIds.2", &a),
                ("VPCId", "uvnet-9"),
            ],
            vec![&a, &c],
            2,
        ),
        (vec![("LoadBalancerIds.0", "alb-unknown")], vec![], 0),
        (vec![("Type", "Application")], vec![&a, &b, &c], 3),
        (vec![("Type", "Network")], vec![], 0),
        (
            vec![("Type", "Network"), ("LoadBalancerIds.0", &a)],
            vec![],
            0,
        ),
    ];
    for (params, expected, total) in &cases {
        let answer = api.ok("DescribeLoadBalancers", params).await;
        assert_eq!(
            ids(&answer["LoadBalancers"], "LoadBalancerId"),
            *expected,
            "{params:?}"
        );
        assert_eq!(answer["TotalCount"], *total, "{params:?}");
        for lb in answer["LoadBalancers"].as_array().into_iter().flatten() {
            assert_load_balancer(lb);
        }
    }
    for (params, name) in [
        (vec![("Limit", "ten")], "Limit"),
        (vec![("Offset", "-1")], "Offset"),
        (vec![("Type", "Gateway")], "Type"),
        (vec![("ShowDetail", "maybe")], "ShowDetail"),
    ] {
        let message = api.fails(230, "DescribeLoadBalancers", &params).await;
        assert!(message.contains(&format!("[{name}]")), "{message}");
    }
}

#[tokio::test]
async fn show_detail_renders_listeners_as_describe_listeners_does() {
    let api = Api::start().await;
    let ssl = api.ssl("detail.example.test").await;
    let lb = api.lb(&[]).await;
    let https = api.listener(&lb, "HTTPS", free_port(), Some(&ssl)).await;
    let http = api.listener(&lb, "HTTP", free_port(), None).await;

    let brief = api.describe_lb(&lb, false).await;
    assert_eq!(brief["Listeners"], serde_json::json!([]));
    let detailed = api.describe_lb(&lb, true).await;
    assert_load_balancer(&detailed);
    assert_eq!(
        ids(&detailed["Listeners"], "ListenerId"),
        vec![https.clone(), http.clone()]
    );
    let listed = api
        .ok("DescribeListeners", &[("LoadBalancerId", &lb)])
        .await;
    assert_eq!(detailed["Listeners"], listed["Listeners"]);
}

// ---- listeners ---------------------------------------------------------------------------------

#[tokio::test]
async fn https_listener_lifecycle_as_certimate_drives_it() {
    let api = Api::start().await;
    let old = api.ssl("shop.example.test").await;
    let new = api.ssl("shop.example.test").await;
    let sni = api.ssl("api.example.test").await;
    let lb = api.lb(&[]).await;
    let port = free_port();
    let listener = api.listener(&lb, "HTTPS", port, Some(&old)).await;

    let shown = api.describe_listener(&lb, &listener).await;
    assert_listener(&shown);
    assert_eq!(
        shown["ListenerPort"], port,
        "ListenerPort is a JSON integer"
    );
    assert_eq!(shown["ListenerProtocol"], "HTTPS");
    assert_eq!(certificates(&shown), vec![(old.clone(), true)]);
    // Defaults of the field table, with their JSON types.
    for (field, expected) in [
        ("Name", serde_json::json!("listener")),
        ("IdleTimeout", 60.into()),
        ("Scheduler", "Roundrobin".into()),
        ("HTTP2Enabled", false.into()),
        ("CompressionEnabled", false.into()),
        ("RedirectEnabled", false.into()),
        ("RedirectPort", 443.into()),
        ("SecurityPolicyId", "Default".into()),
        ("TargetProtocol", "HTTP".into()),
        ("Remark", "".into()),
        ("State", "None".into()),
        ("Targets", serde_json::json!([])),
    ] {
        assert_eq!(shown[field], expected, "{field}");
    }
    assert_eq!(shown["HealthCheckConfig"]["Enabled"], true);
    assert_eq!(shown["HealthCheckConfig"]["Type"], "Port");
    assert_eq!(shown["StickinessConfig"]["Enabled"], false);
    assert_eq!(shown["StickinessConfig"]["Type"], "ServerInsert");
    let rules = shown["Rules"].as_array().expect("Rules");
    assert_eq!(rules.len(), 1);
    assert_eq!(
        (&rules[0]["IsDefault"], &rules[0]["RuleActions"][0]["Type"]),
        (&true.into(), &"Forward".into())
    );

    // certimate, no SNI domain: the default is not the new certificate, so replace it.
    api.ok(
        "UpdateListenerAttribute",
        &[
            ("LoadBalancerId", &lb),
            ("ListenerId", &listener),
            ("Certificates.0", &new),
        ],
    )
    .await;
    assert_eq!(
        certificates(&api.describe_listener(&lb, &listener).await),
        vec![(new.clone(), true)]
    );
    // Again with the same certificate: nothing to do, still fine.
    api.ok(
        "UpdateListenerAttribute",
        &[
            ("LoadBalancerId", &lb),
            ("ListenerId", &listener),
            ("Certificates.0", &new),
        ],
    )
    .await;

    // An extension certificate is listed after the default, IsDefault false.
    api.ok(
        "AddSSLBinding",
        &[
            ("LoadBalancerId", &lb),
            ("ListenerId", &listener),
            ("SSLIds.0", &sni),
        ],
    )
    .await;
    let shown = api.describe_listener(&lb, &listener).await;
    assert_eq!(
        certificates(&shown),
        vec![(new.clone(), true), (sni.clone(), false)]
    );
    // Replacing the default keeps the extension certificate and the order.
    api.ok(
        "UpdateListenerAttribute",
        &[
            ("LoadBalancerId", &lb),
            ("ListenerId", &listener),
            ("Certificates.0", &old),
        ],
    )
    .await;
    assert_eq!(
        certificates(&api.describe_listener(&lb, &listener).await),
        vec![(old.clone(), true), (sni.clone(), false)]
    );

    // certimate pages listeners by LB with Offset/Limit as integers.
    let page = api
        .ok(
            "DescribeListeners",
            &[("LoadBalancerId", &lb), ("Offset", "0"), ("Limit", "100")],
        )
        .await;
    assert_eq!(
        ids(&page["Listeners"], "ListenerId"),
        vec![listener.clone()]
    );

    api.ok(
        "DeleteListener",
        &[
            ("LoadBalancerId", &lb),
            ("ListenerId", &listener),
            ("RelatedRedirectDisabled", "false"),
        ],
    )
    .await;
    assert_eq!(api.listener_count(&lb).await, 0);
    // The certificates are free again.
    api.ok("DeleteSSL", &[("SSLId", &old)]).await;
    api.fails(4143, "DescribeListeners", &[("ListenerId", &listener)])
        .await;
    api.fails(
        4143,
        "DeleteListener",
        &[("LoadBalancerId", &lb), ("ListenerId", &listener)],
    )
    .await;
}

#[tokio::test]
async fn create_listener_is_validated_before_anything_is_written() {
    let api = Api::start().await;
    let lb = api.lb(&[]).await;
    let a = api.ssl("a.example.test").await;
    let b = api.ssl("b.example.test").await;
    let port = free_port().to_string();
    let base = |protocol: &'static str| {
        vec![
            ("LoadBalancerId", lb.clone()),
            ("ListenerProtocol", protocol.to_string()),
            ("ListenerPort", port.clone()),
        ]
    };
    let with = |mut params: Vec<(&'static str, String)>, extra: &[(&'static str, &str)]| {
        params.retain(|(key, _)| !extra.iter().any(|(k, _)| k == key));
        params.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        params
    };
    // (params, RetCode, parameter named in the message)
    let cases: Vec<(OwnedPairs, i64, &str)> = vec![
        (base("HTTPS"), 230, "Certificates"),
        (
            with(
                base("HTTPS"),
                &[("Certificates.0", &a), ("Certificates.1", &b)],
            ),
            230,
            "Certificates",
        ),
        (
            with(base("HTTP"), &[("Certificates.0", &a)]),
            230,
            "Certificates",
        ),
        (
            with(base("HTTPS"), &[("Certificates.0", "ssl-unknown")]),
            4079,
            "ssl-unknown",
        ),
        (vec![("ListenerPort", port.clone())], 230, "LoadBalancerId"),
        (
            vec![("LoadBalancerId", "alb-unknown".into())],
            4103,
            "alb-unknown",
        ),
        (
            vec![("LoadBalancerId", "ulb-unknown".into())],
            4103,
            "ulb-unknown",
        ),
        (
            with(base("HTTP"), &[("ListenerProtocol", "TCP")]),
            230,
            "ListenerProtocol",
        ),
        (
            with(base("HTTP"), &[("ListenerPort", "0")]),
            230,
            "ListenerPort",
        ),
        (
            with(base("HTTP"), &[("ListenerPort", "65536")]),
            230,
            "ListenerPort",
        ),
        (
            with(base("HTTP"), &[("IdleTimeout", "0")]),
            230,
            "IdleTimeout",
        ),
        (
            with(base("HTTP"), &[("IdleTimeout", "86401")]),
            230,
            "IdleTimeout",
        ),
        (
            with(base("HTTP"), &[("Scheduler", "Random")]),
            230,
            "Scheduler",
        ),
        (
            with(base("HTTP"), &[("TargetProtocol", "TCP")]),
            230,
            "TargetProtocol",
        ),
        (
            with(base("HTTP"), &[("HTTP2Enabled", "yes")]),
            230,
            "HTTP2Enabled",
        ),
        (
            with(base("HTTP"), &[("HTTP2Enabled", "true")]),
            230,
            "HTTP2Enabled",
        ),
        (
            with(
                base("HTTPS"),
                &[("Certificates.0", &a), ("RedirectEnabled", "true")],
            ),
            230,
            "RedirectEnabled",
        ),
        (
            with(base("HTTP"), &[("RedirectPort", "0")]),
            230,
            "RedirectPort",
        ),
        (
            with(base("HTTP"), &[("HealthCheckConfig.Type", "TCP")]),
            230,
            "HealthCheckConfig.Type",
        ),
        (
            with(base("HTTP"), &[("HealthCheckConfig.Enabled", "on")]),
            230,
            "HealthCheckConfig.Enabled",
        ),
        (
            with(base("HTTP"), &[("HealthCheckConfig.Method", "POST")]),
            230,
            "HealthCheckConfig.Method",
        ),
        (
            with(base("HTTP"), &[("HealthCheckConfig.Path", "health")]),
            230,
            "HealthCheckConfig.Path",
        ),
        (
            with(
                base("HTTP"),
                &[
                    ("HealthCheckConfig.Interval", "2"),
                    ("HealthCheckConfig.TimeOut", "3"),
                ],
            ),
            230,
            "HealthCheckConfig.TimeOut",
        ),
        (
            with(base("HTTP"), &[("StickinessConfig.Type", "Cookie")]),
            230,
            "StickinessConfig.Type",
        ),
        (
            with(
                base("HTTP"),
                &[
                    ("StickinessConfig.Enabled", "true"),
                    ("StickinessConfig.Type", "UserDefined"),
                ],
            ),
            230,
            "StickinessConfig.CookieName",
        ),
    ];
    for (params, code, named) in &cases {
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let message = api.fails(*code, "CreateListener", &params).await;
        assert!(message.contains(named), "{params:?}: {message}");
    }
    assert_eq!(
        api.listener_count(&lb).await,
        0,
        "a failed create wrote a listener"
    );
    // The exact message the spec gives for the missing default certificate.
    let message = api
        .fails(
            230,
            "CreateListener",
            &[("LoadBalancerId", &lb), ("ListenerProtocol", "HTTPS")],
        )
        .await;
    assert!(
        message.starts_with("Params [Certificates] not available"),
        "{message}"
    );
}

#[tokio::test]
async fn listener_ports_are_unique_per_load_balancer() {
    let api = Api::start().await;
    let first = api.lb(&[]).await;
    let second = api.lb(&[]).await;
    let port = free_port();
    api.listener(&first, "HTTP", port, None).await;
    let port_text = port.to_string();
    api.fails(
        4107,
        "CreateListener",
        &[("LoadBalancerId", &first), ("ListenerPort", &port_text)],
    )
    .await;
    assert_eq!(api.listener_count(&first).await, 1);
    // Each load balancer has its own address, so the same port elsewhere is fine.
    api.listener(&second, "HTTP", port, None).await;

    // A port some other program holds on the load balancer's address: refused before the commit.
    let address = api.describe_lb(&first, false).await["IPInfos"][0]["IP"]
        .as_str()
        .expect("IP")
        .to_string();
    let squatter =
        std::net::TcpListener::bind((address.as_str(), 0)).expect("bind on the LB address");
    let taken = squatter
        .local_addr()
        .expect("local addr")
        .port()
        .to_string();
    api.fails(
        4107,
        "CreateListener",
        &[("LoadBalancerId", &first), ("ListenerPort", &taken)],
    )
    .await;
    assert_eq!(
        api.listener_count(&first).await,
        1,
        "a refused create wrote a listener"
    );
    drop(squatter);
    api.ok(
        "CreateListener",
        &[("LoadBalancerId", &first), ("ListenerPort", &taken)],
    )
    .await;
}

#[tokio::test]
async fn unknown_ids_answer_with_their_codes() {
    let api = Api::start().await;
    let lb = api.lb(&[]).await;
    let other = api.lb(&[]).await;
    let listener = api.listener(&lb, "HTTP", free_port(), None).await;
    let foreign = api.listener(&other, "HTTP", free_port(), None).await;

    // (action, params, RetCode)
    let cases: Vec<(&str, Pairs, i64)> = vec![
        (
            "DescribeListeners",
            vec![("ListenerId", "als-unknown")],
            4143,
        ),
        // With ListenerId the LoadBalancerId is ignored.
        (
            "DescribeListeners",
            vec![("ListenerId", "als-unknown"), ("LoadBalancerId", &lb)],
            4143,
        ),
        (
            "DescribeListeners",
            vec![("LoadBalancerId", "alb-unknown")],
            4103,
        ),
        ("DescribeListeners", vec![], 230),
        (
            "UpdateListenerAttribute",
            vec![
                ("LoadBalancerId", &lb),
                ("ListenerId", "als-unknown"),
                ("Name", "x"),
            ],
            4143,
        ),
        (
            "UpdateListenerAttribute",
            vec![
                ("LoadBalancerId", "alb-unknown"),
                ("ListenerId", &listener),
                ("Name", "x"),
            ],
            4103,
        ),
        (
            "UpdateListenerAttribute",
            vec![
                ("LoadBalancerId", &lb),
                ("ListenerId", &foreign),
                ("Name", "x"),
            ],
            4143,
        ),
        (
            "UpdateListenerAttribute",
            vec![("ListenerId", &listener)],
            230,
        ),
        (
            "UpdateListenerAttribute",
            vec![("LoadBalancerId", &lb)],
            230,
        ),
        (
            "DeleteListener",
            vec![("LoadBalancerId", &lb), ("ListenerId", "als-unknown")],
            4143,
        ),
        (
            "DeleteListener",
            vec![("LoadBalancerId", "alb-unknown"), ("ListenerId", &listener)],
            4103,
        ),
        (
            "DeleteListener",
            vec![("LoadBalancerId", &lb), ("ListenerId", &foreign)],
            4143,
        ),
        (
            "AddTargets",
            vec![
                ("LoadBalancerId", &lb),
                ("ListenerId", "als-unknown"),
                ("Targets.0.ResourceIP", "10.0.0.1"),
            ],
            4143,
        ),
        (
            "AddTargets",
            vec![
                ("LoadBalancerId", "alb-unknown"),
                ("ListenerId", &listener),
                ("Targets.0.ResourceIP", "10.0.0.1"),
            ],
            4103,
        ),
        (
            "AddTargets",
            vec![
                ("LoadBalancerId", &lb),
                ("ListenerId", &foreign),
                ("Targets.0.ResourceIP", "10.0.0.1"),
            ],
            4143,
        ),
        (
            "RemoveTargets",
            vec![
                ("LoadBalancerId", &lb),
                ("ListenerId", "als-unknown"),
                ("Ids.0", "rs-x"),
            ],
            4143,
        ),
        (
            "UpdateTargetsAttribute",
            vec![
                ("LoadBalancerId", &lb),
                ("ListenerId", "als-unknown"),
                ("Targets.0.Id", "rs-x"),
            ],
            4143,
        ),
    ];
    for (action, params, code) in &cases {
        api.fails(*code, action, params).await;
    }
    // Nothing was touched by the failures.
    assert_eq!(
        api.describe_listener(&lb, &listener).await["Name"],
        "listener"
    );
    assert_eq!(
        api.describe_listener(&other, &foreign).await["Name"],
        "listener"
    );
}

#[tokio::test]
async fn update_listener_attribute_changes_only_what_is_given() {
    let api = Api::start().await;
    let ssl = api.ssl("update.example.test").await;
    let second = api.ssl("second.example.test").await;
    let lb = api.lb(&[]).await;
    let https = api.listener(&lb, "HTTPS", free_port(), Some(&ssl)).await;
    let http = api.listener(&lb, "HTTP", free_port(), None).await;
    let at = |listener: &str| {
        vec![
            ("LoadBalancerId", lb.clone()),
            ("ListenerId", listener.to_string()),
        ]
    };

    let before = api.describe_listener(&lb, &https).await;
    // (field to send, value, where it shows, expected JSON)
    let cases: &[(&str, &str, &[&str], Value)] = &[
        ("Name", "web", &["Name"], "web".into()),
        ("IdleTimeout", "300", &["IdleTimeout"], 300.into()),
        ("Scheduler", "Leastconn", &["Scheduler"], "Leastconn".into()),
        ("HTTP2Enabled", "true", &["HTTP2Enabled"], true.into()),
        (
            "CompressionEnabled",
            "true",
            &["CompressionEnabled"],
            true.into(),
        ),
        (
            "SecurityPolicyId",
            "security-abc",
            &["SecurityPolicyId"],
            "security-abc".into(),
        ),
        (
            "TargetProtocol",
            "HTTPS",
            &["TargetProtocol"],
            "HTTPS".into(),
        ),
        ("Remark", "front door", &["Remark"], "front door".into()),
        (
            "HealthCheckConfig.Type",
            "HTTP",
            &["HealthCheckConfig", "Type"],
            "HTTP".into(),
        ),
        (
            "HealthCheckConfig.Path",
            "/healthz",
            &["HealthCheckConfig", "Path"],
            "/healthz".into(),
        ),
        (
            "HealthCheckConfig.Enabled",
            "false",
            &["HealthCheckConfig", "Enabled"],
            false.into(),
        ),
        (
            "HealthCheckConfig.Interval",
            "30",
            &["HealthCheckConfig", "Interval"],
            30.into(),
        ),
        (
            "StickinessConfig.Enabled",
            "true",
            &["StickinessConfig", "Enabled"],
            true.into(),
        ),
    ];
    let mut expected = before.clone();
    for (field, value, path, json) in cases {
        let mut params = at(&https);
        params.push((field, value.to_string()));
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        api.ok("UpdateListenerAttribute", &params).await;
        let target = path
            .iter()
            .fold(&mut expected, |value, key| &mut value[*key]);
        *target = json.clone();
        let shown = api.describe_listener(&lb, &https).await;
        assert_listener(&shown);
        assert_eq!(shown, expected, "after {field}={value}");
    }

    // Rejected changes leave everything as it was.
    let rejected: Vec<(String, Pairs, &str)> = vec![
        (
            https.clone(),
            vec![("Certificates.0", &ssl), ("Certificates.1", &second)],
            "Certificates",
        ),
        (http.clone(), vec![("Certificates.0", &ssl)], "Certificates"),
        (http.clone(), vec![("HTTP2Enabled", "true")], "HTTP2Enabled"),
        (
            https.clone(),
            vec![("RedirectEnabled", "true")],
            "RedirectEnabled",
        ),
        (
            https.clone(),
            vec![("Scheduler", "Random"), ("Name", "never")],
            "Scheduler",
        ),
        (https.clone(), vec![("IdleTimeout", "0")], "IdleTimeout"),
        // Checked against what the call leaves alone: Interval is 30 now.
        (
            https.clone(),
            vec![("HealthCheckConfig.TimeOut", "30")],
            "HealthCheckConfig.TimeOut",
        ),
        (
            https.clone(),
            vec![("StickinessConfig.Type", "UserDefined")],
            "StickinessConfig.CookieName",
        ),
    ];
    for (listener, extra, name) in &rejected {
        let mut params: Vec<(&str, &str)> = vec![("LoadBalancerId", &lb), ("ListenerId", listener)];
        params.extend_from_slice(extra);
        let message = api.fails(230, "UpdateListenerAttribute", &params).await;
        assert!(
            message.contains(&format!("[{name}]")),
            "{extra:?}: {message}"
        );
    }
    api.fails(
        4079,
        "UpdateListenerAttribute",
        &[
            ("LoadBalancerId", &lb),
            ("ListenerId", &https),
            ("Certificates.0", "ssl-unknown"),
        ],
    )
    .await;
    assert_eq!(api.describe_listener(&lb, &https).await, expected);
    assert_eq!(certificates(&expected), vec![(ssl.clone(), true)]);

    // An HTTP listener may redirect, to another port.
    api.ok(
        "UpdateListenerAttribute",
        &[
            ("LoadBalancerId", &lb),
            ("ListenerId", &http),
            ("RedirectEnabled", "true"),
            ("RedirectPort", "8443"),
        ],
    )
    .await;
    let shown = api.describe_listener(&lb, &http).await;
    assert_eq!(
        (&shown["RedirectEnabled"], &shown["RedirectPort"]),
        (&true.into(), &8443.into())
    );
}

#[tokio::test]
async fn deleting_a_redirect_target_needs_related_redirect_disabled() {
    let api = Api::start().await;
    let ssl = api.ssl("redirect.example.test").await;
    let lb = api.lb(&[]).await;
    let https_port = free_port();
    let https = api.listener(&lb, "HTTPS", https_port, Some(&ssl)).await;
    let http = api.listener(&lb, "HTTP", free_port(), None).await;
    let https_port = https_port.to_string();
    api.ok(
        "UpdateListenerAttribute",
        &[
            ("LoadBalancerId", &lb),
            ("ListenerId", &http),
            ("RedirectEnabled", "true"),
            ("RedirectPort", &https_port),
        ],
    )
    .await;

    for flag in [None, Some("false")] {
        let mut params = vec![
            ("LoadBalancerId", lb.as_str()),
            ("ListenerId", https.as_str()),
        ];
        params.extend(flag.map(|f| ("RelatedRedirectDisabled", f)));
        let message = api.fails(230, "DeleteListener", &params).await;
        assert!(
            message.contains("[RelatedRedirectDisabled]") && message.contains(&http),
            "{message}"
        );
    }
    assert_eq!(api.listener_count(&lb).await, 2);

    api.ok(
        "DeleteListener",
        &[
            ("LoadBalancerId", &lb),
            ("ListenerId", &https),
            ("RelatedRedirectDisabled", "true"),
        ],
    )
    .await;
    assert_eq!(api.listener_count(&lb).await, 1);
    assert_eq!(
        api.describe_listener(&lb, &http).await["RedirectEnabled"],
        false
    );
    // Nothing redirects to the HTTP listener, so it goes without the flag.
    api.ok(
        "DeleteListener",
        &[("LoadBalancerId", &lb), ("ListenerId", &http)],
    )
    .await;
}

#[tokio::test]
async fn deleting_a_load_balancer_takes_its_listeners_and_bindings() {
    let api = Api::start().await;
    let ssl = api.ssl("cascade.example.test").await;
    let sni = api.ssl("sni.example.test").await;
    let lb = api.lb(&[]).await;
    let listener = api.listener(&lb, "HTTPS", free_port(), Some(&ssl)).await;
    api.ok(
        "AddSSLBinding",
        &[
            ("LoadBalancerId", &lb),
            ("ListenerId", &listener),
            ("SSLIds.0", &sni),
        ],
    )
    .await;
    api.ok(
        "AddTargets",
        &[
            ("LoadBalancerId", &lb),
            ("ListenerId", &listener),
            ("Targets.0.ResourceIP", "127.0.0.1"),
            ("Targets.0.Port", "9"),
        ],
    )
    .await;
    // A bound certificate cannot go.
    api.fails(4108, "DeleteSSL", &[("SSLId", &ssl)]).await;

    api.ok("DeleteLoadBalancer", &[("LoadBalancerId", &lb)])
        .await;
    api.fails(4143, "DescribeListeners", &[("ListenerId", &listener)])
        .await;
    api.fails(4103, "DescribeListeners", &[("LoadBalancerId", &lb)])
        .await;
    api.ok("DeleteSSL", &[("SSLId", &ssl)]).await;
    api.ok("DeleteSSL", &[("SSLId", &sni)]).await;
}

// ---- targets -----------------------------------------------------------------------------------

#[tokio::test]
async fn targets_lifecycle() {
    let api = Api::start().await;
    let lb = api.lb(&[]).await;
    let listener = api.listener(&lb, "HTTP", free_port(), None).await;
    let at = [
        ("LoadBalancerId", lb.as_str()),
        ("ListenerId", listener.as_str()),
    ];

    let added = api
        .ok(
            "AddTargets",
            &[
                at[0],
                at[1],
                ("Targets.0.ResourceType", "UHost"),
                ("Targets.0.ResourceId", "uhost-web1"),
                ("Targets.0.ResourceIP", "127.0.0.1"),
                ("Targets.0.Port", "8080"),
                ("Targets.0.Weight", "10"),
                ("Targets.0.VPCId", "uvnet-1"),
                ("Targets.0.SubnetId", "subnet-1"),
                // An IP target given only by its address as ResourceId, every default taken.
                ("Targets.1.ResourceType", "IP"),
                ("Targets.1.ResourceId", "127.0.0.2"),
            ],
        )
        .await;
    let targets = added["Targets"].as_array().expect("Targets");
    assert_eq!(targets.len(), 2, "{added}");
    for target in targets {
        assert_shape("TargetSet", target, TARGET);
        assert!(
            target["Id"]
                .as_str()
                .is_some_and(|id| id.starts_with("rs-")),
            "{target}"
        );
    }
    // (field, first target, second target)
    for (field, first, second) in [
        (
            "ResourceType",
            serde_json::json!("UHost"),
            serde_json::json!("IP"),
        ),
        ("ResourceId", "uhost-web1".into(), "127.0.0.2".into()),
        ("ResourceIP", "127.0.0.1".into(), "127.0.0.2".into()),
        ("Port", 8080.into(), 80.into()),
        ("Weight", 10.into(), 1.into()),
        ("Enabled", true.into(), true.into()),
        ("IsBackup", false.into(), false.into()),
        ("VPCId", "uvnet-1".into(), "".into()),
        ("SubnetId", "subnet-1".into(), "".into()),
    ] {
        assert_eq!(
            (&targets[0][field], &targets[1][field]),
            (&first, &second),
            "{field}"
        );
    }
    let target_ids = ids(&added["Targets"], "Id");

    let shown = api.describe_listener(&lb, &listener).await;
    assert_listener(&shown);
    assert_eq!(ids(&shown["Targets"], "Id"), target_ids);
    // The one rule forwards to every target with its weight.
    let forward = &shown["Rules"][0]["RuleActions"][0]["ForwardConfig"]["Targets"];
    assert_eq!(ids(forward, "Id"), target_ids);
    assert_eq!(forward[0]["Weight"], 10);

    api.ok(
        "UpdateTargetsAttribute",
        &[
            at[0],
            at[1],
            ("Targets.0.Id", &target_ids[1]),
            ("Targets.0.Weight", "50"),
            ("Targets.0.Enabled", "false"),
            ("Targets.0.IsBackup", "true"),
        ],
    )
    .await;
    let shown = api.describe_listener(&lb, &listener).await;
    let (first, second) = (&shown["Targets"][0], &shown["Targets"][1]);
    assert_eq!(
        (&second["Weight"], &second["Enabled"], &second["IsBackup"]),
        (&50.into(), &false.into(), &true.into())
    );
    assert_eq!(
        (&first["Weight"], &first["Enabled"], &first["IsBackup"]),
        (&10.into(), &true.into(), &false.into())
    );
    assert_eq!(second["Port"], 80, "fields not given stay");

    api.ok("RemoveTargets", &[at[0], at[1], ("Ids.0", &target_ids[0])])
        .await;
    let shown = api.describe_listener(&lb, &listener).await;
    assert_eq!(ids(&shown["Targets"], "Id"), vec![target_ids[1].clone()]);
    api.ok("RemoveTargets", &[at[0], at[1], ("Ids.0", &target_ids[1])])
        .await;
    let shown = api.describe_listener(&lb, &listener).await;
    assert_eq!(
        (&shown["Targets"], &shown["State"]),
        (&serde_json::json!([]), &"None".into())
    );
}

#[tokio::test]
async fn target_requests_are_all_or_nothing() {
    let api = Api::start().await;
    let lb = api.lb(&[]).await;
    let listener = api.listener(&lb, "HTTP", free_port(), None).await;
    let existing = api
        .ok(
            "AddTargets",
            &[
                ("LoadBalancerId", &lb),
                ("ListenerId", &listener),
                ("Targets.0.ResourceIP", "127.0.0.1"),
            ],
        )
        .await;
    let existing = ids(&existing["Targets"], "Id");
    let existing = existing[0].as_str();

    let good = [
        ("Targets.0.ResourceIP", "127.0.0.3"),
        ("Targets.0.Port", "81"),
    ];
    // (action, extra params, parameter named in the message); the first item is always valid.
    let cases: Vec<(&str, Pairs, &str)> = vec![
        ("AddTargets", vec![], "Targets"),
        (
            "AddTargets",
            [&good[..], &[("Targets.1.ResourceId", "uhost-1")]].concat(),
            "Targets.1.ResourceIP",
        ),
        (
            "AddTargets",
            [&good[..], &[("Targets.1.ResourceIP", "db.internal")]].concat(),
            "Targets.1.ResourceIP",
        ),
        (
            "AddTargets",
            [&good[..], &[("Targets.1.ResourceIP", "0.0.0.0")]].concat(),
            "Targets.1.ResourceIP",
        ),
        (
            "AddTargets",
            [
                &good[..],
                &[
                    ("Targets.1.ResourceIP", "127.0.0.4"),
                    ("Targets.1.Weight", "0"),
                ],
            ]
            .concat(),
            "Targets.1.Weight",
        ),
        (
            "AddTargets",
            [
                &good[..],
                &[
                    ("Targets.1.ResourceIP", "127.0.0.4"),
                    ("Targets.1.Weight", "101"),
                ],
            ]
            .concat(),
            "Targets.1.Weight",
        ),
        (
            "AddTargets",
            [
                &good[..],
                &[
                    ("Targets.1.ResourceIP", "127.0.0.4"),
                    ("Targets.1.Port", "0"),
                ],
            ]
            .concat(),
            "Targets.1.Port",
        ),
        (
            "AddTargets",
            [
                &good[..],
                &[
                    ("Targets.1.ResourceIP", "127.0.0.4"),
                    ("Targets.1.ResourceType", "ECS"),
                ],
            ]
            .concat(),
            "Targets.1.ResourceType",
        ),
        (
            "AddTargets",
            [
                &good[..],
                &[
                    ("Targets.1.ResourceIP", "127.0.0.4"),
                    ("Targets.1.Enabled", "yes"),
                ],
            ]
            .concat(),
            "Targets.1.Enabled",
        ),
        (
            "AddTargets",
            [
                &good[..],
                &[
                    ("Targets.1.ResourceIP", "127.0.0.3"),
                    ("Targets.1.Port", "81"),
                ],
            ]
            .concat(),
            "Targets.1",
        ),
        ("RemoveTargets", vec![], "Ids"),
        (
            "RemoveTargets",
            vec![("Ids.0", existing), ("Ids.1", "rs-unknown")],
            "rs-unknown",
        ),
        ("UpdateTargetsAttribute", vec![], "Targets"),
        (
            "UpdateTargetsAttribute",
            vec![
                ("Targets.0.Id", existing),
                ("Targets.0.Weight", "5"),
                ("Targets.1.Weight", "5"),
            ],
            "Targets.1.Id",
        ),
        (
            "UpdateTargetsAttribute",
            vec![("Targets.0.Id", existing), ("Targets.0.Weight", "500")],
            "Targets.0.Weight",
        ),
        (
            "UpdateTargetsAttribute",
            vec![
                ("Targets.0.Id", existing),
                ("Targets.0.Weight", "5"),
                ("Targets.1.Id", existing),
            ],
            "Targets.1.Id",
        ),
        (
            "UpdateTargetsAttribute",
            vec![
                ("Targets.0.Id", existing),
                ("Targets.0.Weight", "5"),
                ("Targets.1.Id", "rs-unknown"),
            ],
            "rs-unknown",
        ),
    ];
    let before = configuration(&api.describe_listener(&lb, &listener).await);
    for (action, extra, named) in &cases {
        let mut params = vec![
            ("LoadBalancerId", lb.as_str()),
            ("ListenerId", listener.as_str()),
        ];
        params.extend_from_slice(extra);
        let message = api.fails(230, action, &params).await;
        assert!(message.contains(named), "{action} {extra:?}: {message}");
        assert_eq!(
            configuration(&api.describe_listener(&lb, &listener).await),
            before,
            "{action} {extra:?} changed something"
        );
    }

    let mut too_many: Vec<(String, String)> = (0..21)
        .map(|i| (format!("Ids.{i}"), format!("rs-{i}")))
        .collect();
    too_many.push(("LoadBalancerId".into(), lb.clone()));
    too_many.push(("ListenerId".into(), listener.clone()));
    let params: Vec<(&str, &str)> = too_many
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    api.fails(230, "RemoveTargets", &params).await;
}
