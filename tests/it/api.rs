//! The API server (issue: serve, signatures, accounts, embedded store): request shapes, the
//! gateway error codes, bad input, isolation, restart persistence and the CLI.

use crate::support::{self, sign, Server};
use serde_json::{json, Value};

/// Signed form body with the server's admin key.
fn form(server: &Server, pairs: &[(&str, &str)]) -> String {
    let mut all: Vec<(&str, &str)> = pairs.to_vec();
    all.push(("PublicKey", &server.endpoint.public_key));
    let signature = sign(&all, &server.endpoint.private_key);
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &all {
        out.append_pair(k, v);
    }
    out.append_pair("Signature", &signature);
    out.finish()
}

#[tokio::test]
async fn every_request_shape_is_accepted() {
    let server = support::spawn().await;
    let region = server.endpoint.region.clone();
    let project = server.endpoint.project_id.clone();
    let base = [
        ("Action", "DescribeSSL"),
        ("Region", region.as_str()),
        ("ProjectId", project.as_str()),
    ];

    // GET with a query string, any path.
    let query = form(&server, &base);
    let answer = server.raw_get(&format!("/any/path?{query}")).await;
    assert_eq!(answer["RetCode"], 0, "{answer}");
    assert_eq!(answer["Action"], "DescribeSSLResponse");

    // POST form (Python SDK).
    let answer = server
        .raw_post(
            Some("application/x-www-form-urlencoded"),
            form(&server, &base),
        )
        .await;
    assert_eq!(answer["RetCode"], 0, "{answer}");
    assert_eq!(answer["TotalCount"], 0);
    assert_eq!(answer["DataSet"], json!([]));

    // Go SDK: Action in the query and in the body.
    let body = form(&server, &base);
    let answer = support::raw(
        &server.base_url,
        "POST",
        "/?Action=DescribeSSL",
        Some("application/x-www-form-urlencoded"),
        body.into(),
    )
    .await;
    assert_eq!(answer["RetCode"], 0, "{answer}");

    // Java/JS: JSON with flattened keys and native types.
    let pairs = [
        ("Action", "DescribeSSL"),
        ("Region", region.as_str()),
        ("ProjectId", project.as_str()),
        ("Limit", "100"),
        ("Offset", "0"),
        ("PublicKey", server.endpoint.public_key.as_str()),
    ];
    let signature = sign(&pairs, &server.endpoint.private_key);
    let body = json!({
        "Action": "DescribeSSL", "Region": region, "ProjectId": project, "Limit": 100, "Offset": 0,
        "PublicKey": server.endpoint.public_key, "Signature": signature,
    });
    let answer = server
        .raw_post(Some("application/json"), body.to_string())
        .await;
    assert_eq!(answer["RetCode"], 0, "{answer}");

    // Go JSONEncoder: nested arrays signed with the nested rule (§3.1).
    let pk = server.endpoint.public_key.clone();
    let nested_string =
        format!("ActionDescribeSSLProjectId{project}PublicKey{pk}Region{region}SSLIdsssl-1ssl-2");
    let signature = sha1_hex(&(nested_string + &server.endpoint.private_key));
    let body = json!({
        "Action": "DescribeSSL", "Region": region, "ProjectId": project, "PublicKey": pk,
        "SSLIds": ["ssl-1", "ssl-2"], "Signature": signature,
    });
    let answer = server
        .raw_post(Some("application/json"), body.to_string())
        .await;
    assert_eq!(answer["RetCode"], 0, "{answer}");

    // No content type, JSON body.
    let answer = server.raw_post(None, json!({
        "Action": "DescribeSSL", "Region": region, "ProjectId": project, "Limit": 100, "Offset": 0,
        "PublicKey": server.endpoint.public_key,
        "Signature": sign(&pairs, &server.endpoint.private_key),
    }).to_string()).await;
    assert_eq!(answer["RetCode"], 0, "{answer}");
}

fn sha1_hex(text: &str) -> String {
    use sha1::Digest;
    hex::encode(sha1::Sha1::digest(text.as_bytes()))
}

#[tokio::test]
async fn gateway_error_codes() {
    let server = support::spawn().await;
    let region = server.endpoint.region.clone();
    let pk = server.endpoint.public_key.clone();

    // 160: no Action at all.
    let answer = server
        .raw_post(
            Some("application/x-www-form-urlencoded"),
            form(&server, &[("Region", &region)]),
        )
        .await;
    assert_eq!(answer["RetCode"], 160, "{answer}");

    // 170: no Signature.
    let body = format!("Action=DescribeSSL&Region={region}&PublicKey={pk}");
    let answer = server
        .raw_post(Some("application/x-www-form-urlencoded"), body)
        .await;
    assert_eq!(answer["RetCode"], 170, "{answer}");
    assert_eq!(answer["Action"], "DescribeSSLResponse");

    // 171: wrong signature; a changed value after signing too.
    let body = form(&server, &[("Action", "DescribeSSL"), ("Region", &region)])
        .replace("Region=cn-bj2", "Region=sg");
    let answer = server
        .raw_post(Some("application/x-www-form-urlencoded"), body)
        .await;
    assert_eq!(answer["RetCode"], 171, "{answer}");
    assert_eq!(answer["Message"], "Signature VerifyAC Error");

    // 172: unknown public key (auth runs before everything action-specific).
    let mut other = server.endpoint.clone();
    other.public_key = "nobody".into();
    let answer = server
        .raw_post(
            Some("application/x-www-form-urlencoded"),
            other.signed_body("NoSuchAction", &[]),
        )
        .await;
    assert_eq!(answer["RetCode"], 172, "{answer}");

    // 161: unknown action, signed.
    let answer = server.call("NoSuchAction", &[]).await;
    assert_eq!(answer["RetCode"], 161, "{answer}");
    assert_eq!(answer["Action"], "NoSuchActionResponse");

    // 230: unknown region; missing region.
    let answer = server.call("DescribeSSL", &[("Region", "mars-1")]).await;
    assert_eq!(answer["RetCode"], 230, "{answer}");
    assert!(answer["Message"].as_str().unwrap().contains("Region"));
    let mut no_region = server.endpoint.clone();
    no_region.region = String::new();
    let answer = support::call_with(
        &certbind::client::ApiClient::new(no_region),
        "DescribeSSL",
        &[],
    )
    .await;
    assert_eq!(answer["RetCode"], 230, "{answer}");

    // 292: a project that is not the caller's.
    let answer = server
        .call("DescribeSSL", &[("ProjectId", "org-nosuch")])
        .await;
    assert_eq!(answer["RetCode"], 292, "{answer}");

    // 230: a bad parameter value names the parameter.
    let answer = server.call("DescribeSSL", &[("Limit", "ten")]).await;
    assert_eq!(answer["RetCode"], 230, "{answer}");
    assert!(
        answer["Message"].as_str().unwrap().contains("[Limit]"),
        "{answer}"
    );
}

#[tokio::test]
async fn bad_input_gets_an_envelope_and_writes_nothing() {
    let server = support::spawn().await;
    let cases: Vec<(&str, Option<&str>, Vec<u8>, i64)> = vec![
        (
            "over the body limit",
            Some("application/x-www-form-urlencoded"),
            vec![b'a'; 2 << 20],
            240,
        ),
        (
            "invalid UTF-8 in a form value",
            Some("application/x-www-form-urlencoded"),
            b"Action=CreateSSL&SSLName=%FF%FE".to_vec(),
            230,
        ),
        (
            "invalid UTF-8 bytes",
            Some("application/json"),
            b"{\"Action\":\"\xff\"}".to_vec(),
            230,
        ),
        (
            "malformed JSON",
            Some("application/json"),
            b"{\"Action\": ".to_vec(),
            230,
        ),
        (
            "JSON that is not an object",
            Some("application/json"),
            b"[1,2,3]".to_vec(),
            230,
        ),
        (
            "JSON nested too deep",
            Some("application/json"),
            br#"{"Action":"DescribeSSL","A":{"B":{"C":{"D":{"E":{"F":1}}}}}}"#.to_vec(),
            230,
        ),
        (
            "thousands of parameters",
            Some("application/x-www-form-urlencoded"),
            (0..5000)
                .map(|i| format!("P{i}=v"))
                .collect::<Vec<_>>()
                .join("&")
                .into_bytes(),
            240,
        ),
        (
            "a very long value",
            Some("application/x-www-form-urlencoded"),
            format!("Action=CreateSSL&SSLName={}", "x".repeat(900_000)).into_bytes(),
            240,
        ),
    ];
    for (what, content_type, body, code) in cases {
        let answer = server.raw_post(content_type, body).await;
        assert_eq!(answer["RetCode"], code, "{what}: {answer}");
        assert!(answer["Message"].is_string(), "{what}: {answer}");
        assert!(answer["Action"].is_string(), "{what}: {answer}");
    }
    let answer = server.ok("DescribeSSL", &[]).await;
    assert_eq!(answer["TotalCount"], 0, "nothing was written");
}

#[tokio::test]
async fn accounts_are_isolated_and_sub_keys_are_limited() {
    let server = support::spawn().await;
    let (cert, key) = support::cert(&["a.example.test"]);
    server
        .ok(
            "CreateSSL",
            &[
                ("SSLName", "mine"),
                ("UserCert", &cert),
                ("PrivateKey", &key),
            ],
        )
        .await;

    let other = server.cli(&["account", "create", "tenant-b"]);
    let other_client = server.client_for(&other);
    let seen = support::call_with(&other_client, "DescribeSSL", &[]).await;
    assert_eq!(seen["RetCode"], 0, "{seen}");
    assert_eq!(
        seen["TotalCount"], 0,
        "another account sees nothing: {seen}"
    );
    // Naming the first account's project is refused.
    let foreign = support::call_with(
        &other_client,
        "DescribeSSL",
        &[("ProjectId", &server.endpoint.project_id)],
    )
    .await;
    assert_eq!(foreign["RetCode"], 292, "{foreign}");

    // A second project and a sub-account key limited to it.
    let project: Value = serde_json::from_str(&server.cli(&[
        "project",
        "create",
        "--account",
        "admin",
        "--name",
        "second",
    ]))
    .unwrap();
    let project_id = project["ProjectId"].as_str().unwrap().to_string();
    let sub = server.cli(&[
        "key",
        "create",
        "--account",
        "admin",
        "--projects",
        &project_id,
    ]);
    let sub_value: Value = serde_json::from_str(&sub).unwrap();
    let mut sub_client = server.client_for(&sub);
    // Sub keys must name a project.
    let mut no_project = sub_client.endpoint.clone();
    no_project.project_id = String::new();
    let answer = support::call_with(
        &certbind::client::ApiClient::new(no_project),
        "DescribeSSL",
        &[],
    )
    .await;
    assert_eq!(answer["RetCode"], 230, "{answer}");
    let answer = support::call_with(&sub_client, "DescribeSSL", &[]).await;
    assert_eq!(answer["RetCode"], 0, "{answer} {sub_value}");
    assert_eq!(answer["TotalCount"], 0, "the second project is empty");
    sub_client.endpoint.project_id = server.endpoint.project_id.clone();
    let answer = support::call_with(&sub_client, "DescribeSSL", &[]).await;
    assert_eq!(
        answer["RetCode"], 292,
        "the sub key may not use the default project: {answer}"
    );

    // The main key may omit ProjectId: its default project is used.
    let mut main = server.endpoint.clone();
    main.project_id = String::new();
    let answer =
        support::call_with(&certbind::client::ApiClient::new(main), "DescribeSSL", &[]).await;
    assert_eq!(answer["TotalCount"], 1, "{answer}");
}

#[tokio::test]
async fn state_survives_a_restart_and_one_server_per_data_dir() {
    let server = support::spawn().await;
    let (cert, key) = support::cert(&["persist.example.test"]);
    let created = server
        .ok(
            "CreateSSL",
            &[
                ("SSLName", "keep"),
                ("UserCert", &cert),
                ("PrivateKey", &key),
            ],
        )
        .await;
    let ssl_id = created["SSLId"].as_str().unwrap().to_string();
    let credentials = std::fs::read_to_string(server.data_dir().join("credentials.json")).unwrap();

    // A second serve on the same data dir fails with a clear message.
    let output = std::process::Command::new(support::BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(server.data_dir())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("already running"),
        "{output:?}"
    );

    // Files with secrets are private; the private key is not in the database in clear text.
    use std::os::unix::fs::PermissionsExt;
    for name in ["credentials.json", "master.key"] {
        let mode = std::fs::metadata(server.data_dir().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
    let db = std::fs::read(server.data_dir().join("certbind.db")).unwrap();
    let key_body = key.lines().nth(1).unwrap();
    assert!(
        !contains(&db, key_body.as_bytes()),
        "certificate key stored in clear"
    );
    assert!(
        !contains(&db, server.endpoint.private_key.as_bytes()),
        "API private key stored in clear"
    );

    let server = server.restart().await;
    assert_eq!(
        std::fs::read_to_string(server.data_dir().join("credentials.json"))
            .unwrap()
            .len(),
        credentials.len(),
        "the same credentials are reused"
    );
    let answer = server.ok("DescribeSSL", &[("SSLId", &ssl_id)]).await;
    assert_eq!(answer["DataSet"][0]["SSLName"], "keep");
    assert!(answer["DataSet"][0]["SSLContent"]
        .as_str()
        .unwrap()
        .contains(key_body));
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn the_cli_call_command_signs_and_reports() {
    let server = support::spawn().await;
    let creds = server.data_dir().join("credentials.json");
    let output = std::process::Command::new(support::BIN)
        .args(["call", "DescribeSSL", "Limit=5", "--credentials"])
        .arg(&creds)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["RetCode"], 0);

    // Environment credentials (terraform's names), and a failing call exits non-zero.
    let output = std::process::Command::new(support::BIN)
        .args(["call", "DeleteSSL", "SSLId=ssl-nosuch"])
        .env("UCLOUD_PUBLIC_KEY", &server.endpoint.public_key)
        .env("UCLOUD_PRIVATE_KEY", &server.endpoint.private_key)
        .env("UCLOUD_REGION", &server.endpoint.region)
        .env("UCLOUD_PROJECT_ID", &server.endpoint.project_id)
        .env("UCLOUD_BASE_URL", &server.base_url)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["RetCode"], 4079, "{answer}");
}
