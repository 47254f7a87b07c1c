//! The wire shapes of every official client, replayed as raw HTTP with the server's credentials:
//! Java/JS (JSON with flattened keys and native types, spec §3.3 V3/V3f), the Go SDK's
//! `JSONEncoder` (nested arrays and objects, V8/V9), the Go form encoder (`?Action=` in the query
//! and the body, Appendix C) and the Python form body.

use serde_json::{json, Map, Value};

use crate::support::{self, Server};

/// The Go `any2String` rule: arrays concatenate their items, objects their sorted key+value.
fn nested_string(value: &Value) -> String {
    match value {
        Value::Array(items) => items.iter().map(nested_string).collect(),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            keys.into_iter()
                .map(|k| format!("{k}{}", nested_string(&map[k])))
                .collect()
        }
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        // The SDKs print integral floats without a fraction (`5.0` → `5`).
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        Value::Null => String::new(),
    }
}

/// Signs a JSON body the way the client that produced it does, and adds PublicKey + Signature.
fn sign_json(server: &Server, mut body: Map<String, Value>) -> String {
    body.insert("Region".into(), json!(server.endpoint.region));
    body.insert("ProjectId".into(), json!(server.endpoint.project_id));
    body.insert("PublicKey".into(), json!(server.endpoint.public_key));
    let mut keys: Vec<&String> = body.keys().collect();
    keys.sort();
    let mut text: String = keys
        .into_iter()
        .map(|k| format!("{k}{}", nested_string(&body[k])))
        .collect();
    text.push_str(&server.endpoint.private_key);
    use sha1::Digest;
    let signature = hex::encode(sha1::Sha1::digest(text.as_bytes()));
    body.insert("Signature".into(), json!(signature));
    Value::Object(body).to_string()
}

async fn fixture(server: &Server) -> (String, String, String) {
    let mut ids = Vec::new();
    for name in ["w1.example.test", "w2.example.test"] {
        let (cert, key) = support::cert(&[name]);
        let answer = server
            .ok(
                "CreateSSL",
                &[("SSLName", name), ("UserCert", &cert), ("PrivateKey", &key)],
            )
            .await;
        ids.push(answer["SSLId"].as_str().unwrap().to_string());
    }
    let alb = server
        .ok(
            "CreateLoadBalancer",
            &[("VPCId", "uvnet-1"), ("SubnetId", "subnet-1")],
        )
        .await;
    (
        alb["LoadBalancerId"].as_str().unwrap().to_string(),
        ids[0].clone(),
        ids[1].clone(),
    )
}

#[tokio::test]
async fn java_and_js_flattened_json_with_native_types() {
    let server = support::spawn().await;
    let (alb, cert, _) = fixture(&server).await;
    // V3's shape: ints, bools and floats as JSON numbers/booleans, lists flattened.
    let body = json!({
        "Action": "CreateListener", "LoadBalancerId": alb, "ListenerProtocol": "HTTPS",
        "ListenerPort": 443, "HTTP2Enabled": true, "RedirectEnabled": false,
        "Certificates.0": cert, "HealthCheckConfig.Enabled": true, "HealthCheckConfig.Type": "Port",
        "HealthCheckConfig.Interval": 5.0, "IdleTimeout": 60,
    });
    let answer = server
        .raw_post(
            Some("application/json"),
            sign_json(&server, body.as_object().unwrap().clone()),
        )
        .await;
    assert_eq!(answer["RetCode"], 0, "{answer}");
    let listener = answer["ListenerId"].as_str().unwrap();
    let described = server
        .ok("DescribeListeners", &[("ListenerId", listener)])
        .await;
    let l = &described["Listeners"][0];
    assert_eq!(l["ListenerPort"], 443);
    assert_eq!(l["HTTP2Enabled"], true);
    assert_eq!(l["IdleTimeout"], 60);
    assert_eq!(
        l["Certificates"],
        json!([{"SSLId": cert, "IsDefault": true}])
    );
}

#[tokio::test]
async fn go_json_encoder_nested_arrays_and_objects() {
    let server = support::spawn().await;
    let (alb, cert, sni) = fixture(&server).await;
    // V9's shape: nested array and object in one JSON body, posted to `?Action=`.
    let body = json!({
        "Action": "CreateListener", "Certificates": [cert], "HTTP2Enabled": true,
        "HealthCheckConfig": {"Enabled": true, "Type": "Port"}, "ListenerPort": 443,
        "ListenerProtocol": "HTTPS", "LoadBalancerId": alb,
    });
    let answer = support::raw(
        &server.base_url,
        "POST",
        "/?Action=CreateListener",
        Some("application/json"),
        sign_json(&server, body.as_object().unwrap().clone()).into(),
    )
    .await;
    assert_eq!(answer["RetCode"], 0, "{answer}");
    let listener = answer["ListenerId"].as_str().unwrap().to_string();
    // V8's shape: AddSSLBinding with `SSLIds` as a JSON array.
    let body = json!({"Action": "AddSSLBinding", "ListenerId": listener, "LoadBalancerId": alb, "SSLIds": [sni]});
    let answer = support::raw(
        &server.base_url,
        "POST",
        "/?Action=AddSSLBinding",
        Some("application/json"),
        sign_json(&server, body.as_object().unwrap().clone()).into(),
    )
    .await;
    assert_eq!(answer["RetCode"], 0, "{answer}");
    let described = server
        .ok("DescribeListeners", &[("ListenerId", &listener)])
        .await;
    assert_eq!(
        described["Listeners"][0]["Certificates"],
        json!([{"SSLId": cert, "IsDefault": true}, {"SSLId": sni, "IsDefault": false}])
    );
}

#[tokio::test]
async fn go_and_python_form_bodies() {
    let server = support::spawn().await;
    let (alb, cert, sni) = fixture(&server).await;
    let listener = server
        .ok(
            "CreateListener",
            &[
                ("LoadBalancerId", &alb),
                ("ListenerProtocol", "HTTPS"),
                ("ListenerPort", "443"),
                ("Certificates.0", &cert),
            ],
        )
        .await["ListenerId"]
        .as_str()
        .unwrap()
        .to_string();
    // Go: keys sorted, `Action` in the query too (Appendix C).
    let body = server.endpoint.signed_body(
        "AddSSLBinding",
        &[
            ("ListenerId".into(), listener.clone()),
            ("LoadBalancerId".into(), alb.clone()),
            ("SSLIds.0".into(), sni.clone()),
        ],
    );
    let answer = support::raw(
        &server.base_url,
        "POST",
        "/?Action=AddSSLBinding",
        Some("application/x-www-form-urlencoded"),
        body.into(),
    )
    .await;
    assert_eq!(answer["RetCode"], 0, "{answer}");
    // Python: insertion order, V7's UpdateSSLBinding on the listener.
    let body = server.endpoint.signed_body(
        "UpdateSSLBinding",
        &[
            ("ListenerId".into(), listener.clone()),
            ("NewSSLId".into(), cert.clone()),
            ("OldSSLId".into(), sni.clone()),
        ],
    );
    let answer = server
        .raw_post(Some("application/x-www-form-urlencoded"), body)
        .await;
    // The new certificate is already the listener's default: refused, nothing changes.
    assert_eq!(answer["RetCode"], 4105, "{answer}");
    let described = server
        .ok("DescribeListeners", &[("ListenerId", &listener)])
        .await;
    assert_eq!(
        described["Listeners"][0]["Certificates"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
