//! Command-line interface: parses arguments and calls the library. Nothing else lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, ServeConfig, StoreLocation};

#[derive(Parser, Debug)]
#[command(
    name = "certbind",
    version,
    about = "A self-hosted load balancer that speaks the UCloud ULB API"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the API server and the data plane.
    Serve(ServeArgs),
    /// Manage accounts (works while `serve` runs).
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Manage projects.
    Project {
        #[command(subcommand)]
        command: ProjectCommand,
    },
    /// Manage API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Send one signed API call and print the JSON answer (exit 1 when RetCode is not 0).
    Call(CallArgs),
}

/// Where the data lives; shared by every command that opens the store.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Directory for the SQLite file, master key and credentials.
    #[arg(long, env = "CERTBIND_DATA_DIR", default_value = "./certbind-data")]
    pub data_dir: PathBuf,
    /// Store URL: `sqlite://PATH` (default: certbind.db in the data dir).
    #[arg(long, env = "CERTBIND_STORE")]
    pub store: Option<String>,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address of the API server.
    #[arg(long, env = "CERTBIND_LISTEN", default_value = "127.0.0.1:6080")]
    pub listen: std::net::SocketAddr,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Accepted regions, comma-separated (default: the UCloud region list).
    #[arg(long, env = "CERTBIND_REGIONS", value_delimiter = ',')]
    pub regions: Vec<String>,
    /// IPv4 range for load balancer addresses: `A.B.C.D/N` or `A.B.C.D-E.F.G.H`.
    #[arg(long, env = "CERTBIND_ADDRESS_POOL", default_value = "127.1.0.0/16")]
    pub address_pool: String,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "CERTBIND_BODY_LIMIT", default_value_t = 1 << 20)]
    pub body_limit: usize,
    /// `on`: this process serves the listeners; `off`: an API-only node.
    #[arg(long, env = "CERTBIND_DATAPLANE", default_value = "on", value_parser = ["on", "off"])]
    pub dataplane: String,
}

#[derive(Subcommand, Debug)]
pub enum AccountCommand {
    /// Create a separate account with its own default project; prints its credentials as JSON.
    Create {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum ProjectCommand {
    /// Create a project in an account; prints its id.
    Create {
        #[arg(long)]
        account: String,
        /// Project name.
        #[arg(long, default_value = "Project")]
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Create a sub-account key limited to some projects; prints its credentials as JSON.
    Create {
        #[arg(long)]
        account: String,
        /// Projects the key may use, comma-separated (default: the account's default project).
        #[arg(long, value_delimiter = ',')]
        projects: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Args, Debug)]
pub struct CallArgs {
    /// The action, e.g. DescribeSSL.
    pub action: String,
    /// Parameters as Key=Value (lists as Name.0=a Name.1=b).
    pub params: Vec<String>,
    /// A credentials.json file; otherwise UCLOUD_PUBLIC_KEY, UCLOUD_PRIVATE_KEY, UCLOUD_REGION,
    /// UCLOUD_PROJECT_ID and UCLOUD_BASE_URL are used.
    #[arg(long)]
    pub credentials: Option<PathBuf>,
}

impl StoreArgs {
    pub fn location(&self) -> anyhow::Result<StoreLocation> {
        StoreLocation::parse(self.store.as_deref(), &self.data_dir)
    }
}

impl ServeArgs {
    pub fn config(&self) -> anyhow::Result<ServeConfig> {
        let regions = if self.regions.is_empty() {
            config::UCLOUD_REGIONS
                .iter()
                .map(|r| r.to_string())
                .collect()
        } else {
            self.regions
                .iter()
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .collect()
        };
        Ok(ServeConfig {
            listen: self.listen,
            data_dir: self.store.data_dir.clone(),
            store: self.store.location()?,
            regions,
            address_pool: config::parse_address_pool(&self.address_pool)?,
            body_limit: self.body_limit,
            dataplane: self.dataplane == "on",
        })
    }
}

/// Runs the parsed command; the process exit code is the result.
pub fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            let config = args.config()?;
            crate::server::serve(config)?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Account {
            command: AccountCommand::Create { name, store },
        } => {
            let store = crate::server::open_store(&store.data_dir, &store.location()?, None)?;
            let creds = store.create_account(&name)?;
            println!(
                "{}",
                crate::server::credentials_json(&creds, config::DEFAULT_REGION, None)
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Project {
            command:
                ProjectCommand::Create {
                    account,
                    name,
                    store,
                },
        } => {
            let store = crate::server::open_store(&store.data_dir, &store.location()?, None)?;
            let project = store.create_project(&account, &name)?;
            println!("{}", serde_json::json!({ "ProjectId": project }));
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Key {
            command:
                KeyCommand::Create {
                    account,
                    projects,
                    store,
                },
        } => {
            let store = crate::server::open_store(&store.data_dir, &store.location()?, None)?;
            let creds = store.create_sub_key(&account, &projects)?;
            println!(
                "{}",
                crate::server::credentials_json(&creds, config::DEFAULT_REGION, None)
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Call(args) => crate::client::call_command(args),
    }
}
