//! Getting a task's images, under ECS's pull behaviours
//! (`ECS_IMAGE_PULL_BEHAVIOR`):
//!
//! - `default`: pull; if the pull fails, use the cached image;
//! - `always`: pull, and fail the task if that fails;
//! - `once`: pull only if no earlier task brought the image;
//! - `prefer-cached`: an image already in the node's store under the
//!   task's exact name is used without contacting any registry.

use std::str::FromStr;
use std::sync::Arc;

use estiba_registry::client::{self, Client, ClientOptions, PullOptions, RemoteRef};
use estiba_store::Store;

use crate::registries::Registries;
use crate::{Error, Result};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PullBehavior {
    #[default]
    Default,
    Always,
    Once,
    PreferCached,
}

impl FromStr for PullBehavior {
    type Err = Error;

    fn from_str(s: &str) -> Result<PullBehavior> {
        match s {
            "default" => Ok(PullBehavior::Default),
            "always" => Ok(PullBehavior::Always),
            "once" => Ok(PullBehavior::Once),
            "prefer-cached" => Ok(PullBehavior::PreferCached),
            other => Err(Error::Invalid(format!(
                "image pull behavior {other}: use default, always, once or prefer-cached"
            ))),
        }
    }
}

/// Registries on the loopback are spoken to in plain HTTP, as docker
/// treats 127.0.0.0/8 as insecure by default.
fn loopback(registry: &str) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(h, _)| h);
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

/// Pulls on a blocking thread of its own: the registry client's future is
/// not `Send` (a closure over borrowed layers), so it is driven there
/// rather than on a task of the runtime.
async fn pull(store: &Store, image: &str, registries: &Registries, login: Login) -> Result<()> {
    let store = store.clone();
    let image = image.to_string();
    let registries = registries.clone();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        handle.block_on(pull_through(&store, &image, &registries, login))
    })
    .await
    .map_err(|e| Error::Invalid(format!("pulling: {e}")))?
}

/// A task's own login for its image's registry (`repositoryCredentials`);
/// without one, the agent's logins (docker's config.json) are used.
pub type Login = Option<(String, String)>;

/// Tries the image's mirrors, then its registry; an image got from a
/// mirror is also named as the task asked for it.
async fn pull_through(
    store: &Store,
    image: &str,
    registries: &Registries,
    login: Login,
) -> Result<()> {
    let name = RemoteRef::parse(image)?.to_string();
    let mut failures = Vec::new();
    for source in registries.sources(&name) {
        // The task's login is for its image's registry, not a mirror's.
        let creds = login.clone().filter(|_| source == name);
        match pull_here(store, &source, creds).await {
            Ok(()) => {
                if source != name {
                    store.tag(&source, image)?;
                    tracing::info!(%image, mirror = %source, "pulled through a mirror");
                }
                return Ok(());
            }
            Err(e) => failures.push(format!("{source}: {e}")),
        }
    }
    Err(Error::Invalid(failures.join("; ")))
}

async fn pull_here(store: &Store, image: &str, creds: Login) -> Result<()> {
    let src = RemoteRef::parse(image)?;
    let options = ClientOptions {
        tls_verify: !loopback(&src.registry),
        creds,
        ..ClientOptions::default()
    };
    let c = Client::connect(&src.registry, &options).await?;
    let opts = PullOptions {
        verify_keys: Vec::new(),
        ..Default::default()
    };
    client::pull(&c, store, &src, &opts, Arc::new(client::NoProgress)).await?;
    Ok(())
}

/// Makes sure `image` is in the store. Returns a warning when a failed
/// pull fell back to the cache.
pub async fn ensure(
    store: &Store,
    image: &str,
    behavior: PullBehavior,
    registries: &Registries,
    login: Login,
) -> Result<Option<String>> {
    let cached = store.find_image(image).is_ok();
    match behavior {
        PullBehavior::PreferCached | PullBehavior::Once if cached => Ok(None),
        PullBehavior::Default => match pull(store, image, registries, login).await {
            Ok(()) => Ok(None),
            Err(e) if cached => Ok(Some(format!(
                "pulling {image} failed ({e}); the cached image is used"
            ))),
            Err(e) => Err(e),
        },
        _ => pull(store, image, registries, login).await.map(|()| None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviours_parse_by_ecs_names() {
        assert_eq!(
            "prefer-cached".parse::<PullBehavior>().unwrap(),
            PullBehavior::PreferCached
        );
        assert!("sometimes".parse::<PullBehavior>().is_err());
        assert!(loopback("127.0.0.1:51670") && loopback("localhost:5000"));
        assert!(!loopback("registry.example.com"));
    }
}
