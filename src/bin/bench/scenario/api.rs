//! `api`: one signed call sent back-to-back on N keep-alive connections, against certbind and
//! against the bare baseline, in the order baseline, certbind, baseline.

use clap::Args;

use crate::bare::{self, BareServer};
use crate::load::{self, Expect};
use crate::report::{self, LoadRow};
use crate::{LoadArgs, TargetArgs};

use super::{post_ok, signed, Target};

#[derive(Args, Debug)]
pub struct ApiArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    /// The action to send.
    #[arg(long, default_value = "DescribeSSL")]
    pub action: String,
    /// A request parameter, Key=Value (repeatable).
    #[arg(long = "param", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{text:?} is not Key=Value"))
}

pub async fn run(args: ApiArgs) -> anyhow::Result<()> {
    let target = Target::open(&args.target).await?;
    let params: Vec<(&str, &str)> = args
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // Signed once: the server still verifies the signature on every request.
    let body = signed(&target.endpoint, &args.action, &params);
    post_ok(&target.client, &body).await?;
    let scripts = vec![vec![body]; args.load.concurrency];
    let timing = args.load.timing();

    println!(
        "api: {} ({} bytes signed form body), {} connections, {:?} measured after {:?} warm-up",
        args.action,
        scripts[0][0].len(),
        args.load.concurrency,
        timing.duration,
        timing.warmup
    );
    let bare = BareServer::start(bare::DESCRIBE_SSL_REPLY)?;
    let before = load::run(&bare.base_url, scripts.clone(), Expect::RetCodeZero, timing).await?;
    let certbind = load::run(
        &target.endpoint.base_url,
        scripts.clone(),
        Expect::RetCodeZero,
        timing,
    )
    .await?;
    let after = load::run(&bare.base_url, scripts, Expect::RetCodeZero, timing).await?;
    drop(bare);

    report::print_load_table(&[
        LoadRow::new("bare baseline (1st)", &before),
        LoadRow::new("certbind", &certbind),
        LoadRow::new("bare baseline (2nd)", &after),
    ]);
    report::print_throughput_ratio(&before, &certbind, &after);
    Ok(())
}
