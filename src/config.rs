//! Server configuration: what `certbind serve` is told, validated once at startup.
//!
//! Every option has an environment variable (`CERTBIND_*`) so containers need no flags.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::store::AddressPool;

/// The UCloud region list (spec §1); the default set of accepted regions.
pub const UCLOUD_REGIONS: &[&str] = &[
    "cn-bj1",
    "cn-bj2",
    "cn-wlcb",
    "cn-wlcb2",
    "cn-sh2",
    "cn-jx",
    "cn-sh",
    "cn-gd2",
    "cn-gd",
    "cn-guiyang1",
    "hk",
    "tw-tp",
    "sg",
    "jpn-tky",
    "kr-seoul",
    "th-bkk",
    "idn-jakarta",
    "vn-sng",
    "ph-mnl",
    "ind-mumbai",
    "pk-khi",
    "us-den",
    "us-ca",
    "us-ws",
    "bra-saopaulo",
    "rus-mosc",
    "ge-fra",
    "uk-london",
    "uae-dubai",
    "afr-nigeria",
    "uz-tas",
    "kz-ala",
    "mx-mex",
];

/// The region written to the bootstrap credentials when the operator does not pick one.
pub const DEFAULT_REGION: &str = "cn-bj2";

/// Where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Sqlite(PathBuf),
}

impl StoreLocation {
    /// `sqlite://PATH`, a plain path, or nothing (the SQLite file in the data dir).
    pub fn parse(value: Option<&str>, data_dir: &Path) -> anyhow::Result<StoreLocation> {
        match value {
            None | Some("") => Ok(StoreLocation::Sqlite(data_dir.join("certbind.db"))),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                anyhow::bail!("--store: the PostgreSQL backend is not built yet; use SQLite")
            }
            Some(url) => Ok(StoreLocation::Sqlite(PathBuf::from(
                url.strip_prefix("sqlite://").unwrap_or(url),
            ))),
        }
    }
}

/// `A.B.C.D/N` or `A.B.C.D-E.F.G.H`: the IPv4 range load balancer addresses come from.
pub fn parse_address_pool(text: &str) -> anyhow::Result<AddressPool> {
    if let Some((first, last)) = text.split_once('-') {
        let first: Ipv4Addr = first.trim().parse()?;
        let last: Ipv4Addr = last.trim().parse()?;
        let (a, b) = (u32::from(first), u32::from(last));
        anyhow::ensure!(
            b >= a,
            "address pool {text}: the last address is before the first"
        );
        return Ok(AddressPool {
            first,
            count: b - a + 1,
        });
    }
    let (base, bits) = text
        .split_once('/')
        .ok_or_else(|| anyhow::anyhow!("address pool {text}: expected A.B.C.D/N or A-B"))?;
    let base: Ipv4Addr = base.trim().parse()?;
    let bits: u32 = bits.trim().parse()?;
    anyhow::ensure!(
        (8..=30).contains(&bits),
        "address pool {text}: prefix must be /8../30"
    );
    let size = 1u32 << (32 - bits);
    let network = u32::from(base) & !(size - 1);
    // Skip the network and broadcast addresses, as a real subnet would.
    Ok(AddressPool {
        first: Ipv4Addr::from(network + 1),
        count: size - 2,
    })
}

/// Validated `serve` settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub store: StoreLocation,
    pub regions: Vec<String>,
    pub address_pool: AddressPool,
    pub body_limit: usize,
    /// Serve the listeners here (the default), or run an API-only node.
    pub dataplane: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools() {
        let pool = parse_address_pool("127.1.0.0/16").unwrap();
        assert_eq!(pool.first, Ipv4Addr::new(127, 1, 0, 1));
        assert_eq!(pool.count, 65_534);
        let pool = parse_address_pool("127.2.0.10-127.2.0.19").unwrap();
        assert_eq!((pool.first, pool.count), (Ipv4Addr::new(127, 2, 0, 10), 10));
        assert!(parse_address_pool("127.2.0.19-127.2.0.10").is_err());
        assert!(parse_address_pool("nonsense").is_err());
    }

    #[test]
    fn store_locations() {
        let dir = Path::new("/d");
        assert_eq!(
            StoreLocation::parse(None, dir).unwrap(),
            StoreLocation::Sqlite(PathBuf::from("/d/certbind.db"))
        );
        assert_eq!(
            StoreLocation::parse(Some("sqlite:///x/y.db"), dir).unwrap(),
            StoreLocation::Sqlite(PathBuf::from("/x/y.db"))
        );
        assert!(StoreLocation::parse(Some("postgres://h/db"), dir).is_err());
    }
}
