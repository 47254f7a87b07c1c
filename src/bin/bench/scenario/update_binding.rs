//! `update-binding`: listener-scope UpdateSSLBinding throughput. One CLB with one HTTPS VServer per
//! connection, all bound to certificate A; each connection flips its own VServer A→B, B→A, … and
//! every answer must say RetCode 0 and ReplacedCount 1. The bare baseline gets the same bodies.

use bytes::Bytes;
use clap::Args;

use crate::bare::{self, BareServer};
use crate::fixture::FlipFixture;
use crate::load::{self, Expect, Script};
use crate::report::{self, LoadRow};
use crate::{LoadArgs, TargetArgs};

use super::{post_ok, replaced, signed, Target};

#[derive(Args, Debug)]
pub struct UpdateBindingArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub load: LoadArgs,
}

pub async fn run(args: UpdateBindingArgs) -> anyhow::Result<()> {
    let target = Target::open(&args.target).await?;
    let connections = args.load.concurrency;
    println!("setting up: 2 certificates, 1 CLB, {connections} HTTPS VServers bound to A");
    let fixture = FlipFixture::create(&target.client, &target.workdir.path, connections).await?;
    let result = measure(&target, &fixture, &args.load).await;
    if !target.owned {
        fixture.remove(&target.client).await;
    }
    result
}

async fn measure(target: &Target, fixture: &FlipFixture, load: &LoadArgs) -> anyhow::Result<()> {
    let flip = |vserver: &str, old: &str, new: &str| -> Bytes {
        signed(
            &target.endpoint,
            "UpdateSSLBinding",
            &[
                ("OldSSLId", old),
                ("NewSSLId", new),
                ("ListenerId", vserver),
            ],
        )
    };
    let scripts: Vec<Script> = fixture
        .vserver_ids
        .iter()
        .map(|vserver| {
            vec![
                flip(vserver, &fixture.ssl_a, &fixture.ssl_b),
                flip(vserver, &fixture.ssl_b, &fixture.ssl_a),
            ]
        })
        .collect();
    // One flip and back before loading, so a server that cannot do it fails with its message.
    for body in &scripts[0] {
        let answer = post_ok(&target.client, body).await?;
        anyhow::ensure!(
            replaced(&answer) == Some(1),
            "expected ReplacedCount 1: {answer}"
        );
    }
    let timing = load.timing();
    let expect = Expect::Replaced(1);
    println!(
        "update-binding: UpdateSSLBinding with ListenerId ({} bytes signed form body), {} \
         connections each flipping its own VServer, {:?} measured after {:?} warm-up",
        scripts[0][0].len(),
        scripts.len(),
        timing.duration,
        timing.warmup
    );
    let bare = BareServer::start(bare::UPDATE_SSL_BINDING_REPLY)?;
    let before = load::run(&bare.base_url, scripts.clone(), expect, timing).await?;
    let certbind = load::run(&target.endpoint.base_url, scripts.clone(), expect, timing).await?;
    let after = load::run(&bare.base_url, scripts, expect, timing).await?;
    drop(bare);

    report::print_load_table(&[
        LoadRow::new("bare baseline (1st)", &before),
        LoadRow::new("certbind", &certbind),
        LoadRow::new("bare baseline (2nd)", &after),
    ]);
    report::print_throughput_ratio(&before, &certbind, &after);
    Ok(())
}
