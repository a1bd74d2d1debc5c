//! Where viewers watch from: the operator's IP-to-location database
//! (`--geoip-db`, a MaxMind GeoLite2 or DB-IP Lite `.mmdb`, City or Country
//! edition), read with the `maxminddb` crate.
//!
//! A lookup gives a country (ISO 3166-1 code) and, with a City edition, a
//! region (the first subdivision's ISO code, else its English name). The
//! address itself is never stored. Without a database, or for an address
//! the database does not know, the location is unknown (`None`): analytics
//! say "unknown", never a guess.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

/// A viewer's location.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// ISO 3166-1 alpha-2 code, e.g. `DE`.
    pub country: Option<String>,
    /// Region: ISO 3166-2 subdivision code (`BY`) or name.
    pub region: Option<String>,
}

#[derive(Deserialize)]
struct Record {
    country: Option<Country>,
    subdivisions: Option<Vec<Subdivision>>,
}

#[derive(Deserialize)]
struct Country {
    iso_code: Option<String>,
}

#[derive(Deserialize)]
struct Subdivision {
    iso_code: Option<String>,
    names: Option<BTreeMap<String, String>>,
}

/// The database, if the operator gave one.
#[derive(Default)]
pub struct GeoIp {
    reader: Option<maxminddb::Reader<Vec<u8>>>,
}

impl GeoIp {
    /// Opens the database at `path` (none: every location is unknown).
    pub fn open(path: Option<&Path>) -> Result<GeoIp, String> {
        let Some(path) = path else { return Ok(GeoIp::default()) };
        let reader = maxminddb::Reader::open_readfile(path).map_err(|e| format!("cannot read the IP location database {}: {e}", path.display()))?;
        Ok(GeoIp { reader: Some(reader) })
    }

    /// Whether a database is loaded.
    pub fn enabled(&self) -> bool {
        self.reader.is_some()
    }

    /// Where `ip` is, as far as the database knows.
    pub fn locate(&self, ip: Option<IpAddr>) -> Location {
        let (Some(reader), Some(ip)) = (&self.reader, ip) else { return Location::default() };
        // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let record: Option<Record> = match reader.lookup(ip).and_then(|r| r.decode()) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("IP location lookup: {e}");
                None
            }
        };
        let Some(r) = record else { return Location::default() };
        let country = r.country.and_then(|c| c.iso_code).filter(|c| !c.is_empty());
        let region = r
            .subdivisions
            .and_then(|s| s.into_iter().next())
            .and_then(|s| s.iso_code.or_else(|| s.names.and_then(|n| n.get("en").cloned())))
            .filter(|r| !r.is_empty() && country.is_some());
        Location { country, region }
    }
}
