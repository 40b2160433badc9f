//! Opening the control plane's state: `--store sqlite` (the default, a
//! file in the data directory) or `--store etcd://HOST:PORT[,HOST:PORT…]`.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use estiba_state::{AnyStore, EtcdStore, SqliteStore};

use crate::api::{Server, Settings};
use crate::audit::Audit;
use crate::model::Db;
use crate::seal::Sealer;
use crate::{Error, IoContext, Result};

/// Which backend holds the state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSpec {
    Sqlite,
    Etcd(Vec<String>),
}

impl FromStr for StoreSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<StoreSpec> {
        if s == "sqlite" {
            return Ok(StoreSpec::Sqlite);
        }
        let endpoints: Vec<String> = match s.strip_prefix("etcd://") {
            Some(rest) => rest
                .split(',')
                .filter(|e| !e.is_empty())
                .map(|e| format!("http://{e}"))
                .collect(),
            None => Vec::new(),
        };
        if endpoints.is_empty() {
            return Err(Error::Invalid(format!(
                "--store {s}: use sqlite or etcd://HOST:PORT[,HOST:PORT…]"
            )));
        }
        Ok(StoreSpec::Etcd(endpoints))
    }
}

/// Opens the store. SQLite's file is `<data>/state.db`.
pub async fn store(data: &Path, spec: &StoreSpec) -> Result<AnyStore> {
    std::fs::create_dir_all(data).ctx("creating", data)?;
    Ok(match spec {
        StoreSpec::Sqlite => AnyStore::Sqlite(SqliteStore::open(&data.join("state.db"))?),
        StoreSpec::Etcd(endpoints) => {
            AnyStore::Etcd(Box::new(EtcdStore::connect(endpoints).await?))
        }
    })
}

/// Everything a control plane needs: its store, its sealing key and its
/// audit log (`<data>/audit.log`).
pub async fn server(data: &Path, spec: &StoreSpec, settings: Settings) -> Result<Arc<Server>> {
    let store = store(data, spec).await?;
    Ok(Arc::new(Server {
        db: Db::new(store),
        http: reqwest::Client::new(),
        sealer: Sealer::open(data)?,
        audit: Audit::open(&data.join("audit.log"))?,
        settings,
        view: crate::view::View::default(),
        leader: crate::leader::Leadership::default(),
        pools: Default::default(),
    }))
}

/// The data directory's default under estiba's own.
pub fn default_data(estiba_data: &Path) -> PathBuf {
    estiba_data.join("cluster")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_specs_parse() {
        assert_eq!("sqlite".parse::<StoreSpec>().unwrap(), StoreSpec::Sqlite);
        assert_eq!(
            "etcd://127.0.0.1:2379,127.0.0.1:2380"
                .parse::<StoreSpec>()
                .unwrap(),
            StoreSpec::Etcd(vec![
                "http://127.0.0.1:2379".into(),
                "http://127.0.0.1:2380".into()
            ])
        );
        assert!("etcd://".parse::<StoreSpec>().is_err());
        assert!("mysql".parse::<StoreSpec>().is_err());
    }
}
