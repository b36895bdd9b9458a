//! Configuration files: the jurisdiction tree, deadline policy overrides and
//! holiday schedules. Each is optional; what is not given comes from the
//! files shipped in `config/` and embedded in the binary.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Datelike;
use mediation_domain::calendar::BusinessCalendar;
use mediation_domain::jurisdiction::Jurisdiction;
use mediation_domain::policy::DeadlinePolicy;
use mediation_domain::services::{Clock, Services};

/// Where to read configuration from; `None` means the shipped default.
#[derive(Debug, Clone, Default)]
pub struct ConfigFiles {
    /// A jurisdiction tree (TOML), instead of the example one.
    pub jurisdiction: Option<PathBuf>,
    /// Deadline policy overrides (TOML), applied over the statutory policy.
    pub policy: Option<PathBuf>,
    /// A directory of yearly holiday files (`*.json`), loaded over the
    /// shipped years.
    pub holidays: Option<PathBuf>,
}

/// A configuration file that could not be used. Names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file was read but its content is invalid.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, from the domain's parser.
        message: String,
    },
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

fn invalid(path: &Path, err: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_owned(),
        message: err.to_string(),
    }
}

/// Builds the aggregates' services from `files` and the shipped defaults.
pub fn load_services(files: &ConfigFiles, clock: Arc<dyn Clock>) -> Result<Services, ConfigError> {
    let jurisdiction = match &files.jurisdiction {
        Some(path) => Jurisdiction::from_toml(&read(path)?).map_err(|e| invalid(path, e))?,
        None => Jurisdiction::from_toml(mediation_domain::EXAMPLE_JURISDICTION)
            .map_err(|e| invalid(Path::new("config/jurisdiction.example.toml"), e))?,
    };
    let mut policy = DeadlinePolicy::statutory();
    if let Some(path) = &files.policy {
        policy = policy
            .with_overrides(&read(path)?)
            .map_err(|e| invalid(path, e))?;
    }
    let mut calendar = BusinessCalendar::new();
    for (year, text) in mediation_domain::STATUTORY_HOLIDAYS {
        calendar
            .load_year_json(text)
            .map_err(|e| invalid(Path::new(&format!("config/holidays/{year}.json")), e))?;
    }
    if let Some(dir) = &files.holidays {
        let entries = std::fs::read_dir(dir).map_err(|source| ConfigError::Read {
            path: dir.clone(),
            source,
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        for path in paths {
            let year = calendar
                .load_year_json(&read(&path)?)
                .map_err(|e| invalid(&path, e))?;
            tracing::debug!(year, path = %path.display(), "holiday schedule loaded");
        }
    }
    let this_year = clock.now().year();
    for year in [this_year, this_year + 1] {
        if !calendar.is_published(year) {
            tracing::warn!(
                year,
                "no holiday schedule for {year}: working days in it are counted Monday to Friday \
                 and deadlines that reach into it are marked provisional; add {year}.json with --holidays"
            );
        }
    }
    let years: Vec<i32> = calendar.published_years().collect();
    tracing::info!(
        divisions = jurisdiction.divisions().count(),
        holiday_years = ?years,
        "configuration loaded"
    );
    Ok(Services::new(clock, policy, calendar, jurisdiction))
}

/// The server's TLS settings from PEM files: its certificate chain and key
/// and, for mutual TLS, the CA that client certificates must be signed by.
pub fn load_tls(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<tonic::transport::ServerTlsConfig, ConfigError> {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let identity = Identity::from_pem(read(cert)?, read(key)?);
    let mut tls = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(tls)
}
