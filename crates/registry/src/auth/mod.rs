//! Who is asking, and may they? Users with argon2 password hashes,
//! per-repository policies by glob, and docker's token flow: a 401 with a
//! Bearer challenge sends the client to `/token`, which answers with a
//! short-lived signed JWT naming the access granted.

mod token;
mod users;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
pub use token::{Claims, Grant};
pub use users::{User, Users};

use crate::config::{AuthConfig, Policy};
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Pull,
    Push,
    Delete,
    /// Repository settings (immutability, lifecycle, signatures).
    Admin,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
            Action::Admin => "admin",
        }
    }

    /// A scope's action; docker asks `*` for deletes.
    fn parse_scope(s: &str) -> Vec<Action> {
        match s {
            "pull" => vec![Action::Pull],
            "push" => vec![Action::Push],
            "delete" => vec![Action::Delete],
            "admin" => vec![Action::Admin],
            "*" => vec![Action::Pull, Action::Push, Action::Delete],
            _ => vec![],
        }
    }
}

/// What a request needs: an action on a repository, or the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Need {
    Repo(String, Action),
    Catalog,
}

impl Need {
    /// The scope a client asks the token endpoint for.
    pub fn scope(needs: &[Need]) -> String {
        let mut repos: Vec<(String, Vec<&str>)> = Vec::new();
        let mut catalog = false;
        for n in needs {
            match n {
                Need::Catalog => catalog = true,
                Need::Repo(name, action) => {
                    let word = match action {
                        Action::Delete => "delete",
                        a => a.as_str(),
                    };
                    match repos.iter_mut().find(|(r, _)| r == name) {
                        Some((_, actions)) if !actions.contains(&word) => actions.push(word),
                        Some(_) => {}
                        None => repos.push((name.clone(), vec![word])),
                    }
                }
            }
        }
        let mut scopes: Vec<String> = repos
            .into_iter()
            .map(|(r, a)| format!("repository:{r}:{}", a.join(",")))
            .collect();
        if catalog {
            scopes.push("registry:catalog:*".into());
        }
        scopes.join(" ")
    }
}

/// Who made a request: a user, or nobody.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub user: Option<String>,
    pub admin: bool,
    pub groups: Vec<String>,
}

impl Identity {
    pub fn name(&self) -> &str {
        self.user.as_deref().unwrap_or("anonymous")
    }
}

/// Why a request was refused, and how to say so.
#[derive(Debug)]
pub enum Denial {
    /// 401 with a Bearer challenge: no credentials, or a token that lacks
    /// the scope or expired. `error` is the challenge's error field.
    Challenge {
        scope: String,
        error: Option<&'static str>,
        message: String,
    },
    /// 403: the identity is known and not allowed.
    Forbidden { who: String, message: String },
}

/// What a repository's own policy grants, given its name.
pub type RepositoryGrants = Box<dyn Fn(&str) -> Vec<crate::settings::PolicyGrant> + Send + Sync>;

pub struct Auth {
    config: AuthConfig,
    policies: Vec<(glob::Pattern, Policy)>,
    users: Users,
    key: Vec<u8>,
    /// Per-repository grants (ECR repository policies), read at each check.
    repository_grants: Option<RepositoryGrants>,
    /// Basic credentials verified recently: argon2 is slow on purpose, and a
    /// client sending Basic sends it with every request.
    verified: Mutex<std::collections::HashMap<[u8; 32], (String, Instant)>>,
}

const VERIFIED_TTL: Duration = Duration::from_secs(60);

/// Appended to the service name as the audience of login tokens, so that
/// one is never taken as a Bearer token (whose audience is the service).
const LOGIN_AUDIENCE: &str = "#ecr-login";

impl Auth {
    pub fn new(root: &Path, config: AuthConfig, policies: Vec<Policy>) -> Result<Auth> {
        let policies = policies
            .into_iter()
            .map(|p| {
                glob::Pattern::new(&p.repositories)
                    .map(|g| (g, p.clone()))
                    .map_err(|e| Error::Config(format!("glob {:?}: {e}", p.repositories)))
            })
            .collect::<Result<_>>()?;
        Ok(Auth {
            config,
            policies,
            users: Users::open(root)?,
            key: token::signing_key(root)?,
            repository_grants: None,
            verified: Mutex::new(Default::default()),
        })
    }

    /// Adds repositories' own policies to the configured ones.
    pub fn with_repository_grants(mut self, grants: RepositoryGrants) -> Auth {
        self.repository_grants = Some(grants);
        self
    }

    pub fn service(&self) -> &str {
        &self.config.service
    }

    pub fn configured_realm(&self) -> Option<&str> {
        self.config.realm.as_deref()
    }

    /// The actions `who` has on `repo` under the policies.
    pub fn allowed(&self, who: &Identity, repo: &str) -> HashSet<Action> {
        if who.admin {
            return [Action::Pull, Action::Push, Action::Delete, Action::Admin].into();
        }
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: false,
            require_literal_leading_dot: false,
        };
        let mut out = HashSet::new();
        for (glob, p) in &self.policies {
            if !glob.matches_with(repo, opts) {
                continue;
            }
            let applies = match &who.user {
                None => p.anonymous,
                Some(user) => {
                    p.anonymous
                        || p.users.iter().any(|u| u == user || u == "*")
                        || p.groups.iter().any(|g| who.groups.contains(g))
                }
            };
            if applies {
                out.extend(p.actions.iter().copied());
            }
        }
        if let (Some(grants), Some(user)) = (&self.repository_grants, &who.user) {
            for g in grants(repo) {
                if g.users.iter().any(|u| u == user || u == "*") {
                    out.extend(g.actions.iter().copied());
                }
            }
        }
        out
    }

    /// What the policies let `who` do, whatever a token in hand grants.
    pub fn permits(&self, who: &Identity, need: &Need) -> bool {
        match need {
            Need::Repo(repo, action) => self.allowed(who, repo).contains(action),
            // The catalog is filtered by pull access; anyone with any
            // identity may ask for it.
            Need::Catalog => who.user.is_some() || self.policies.iter().any(|(_, p)| p.anonymous),
        }
    }

    /// Checks a request's credentials against what it needs.
    pub fn authorize(
        &self,
        authorization: Option<&str>,
        needs: &[Need],
    ) -> Result<Identity, Denial> {
        let challenge = |error, message: String| Denial::Challenge {
            scope: Need::scope(needs),
            error,
            message,
        };
        match authorization {
            Some(h) if h.len() > 7 && h[..7].eq_ignore_ascii_case("bearer ") => {
                let claims = token::verify(&self.key, &self.config.service, h[7..].trim())
                    .map_err(|e| challenge(Some("invalid_token"), e.to_string()))?;
                let who = self.identity_of(claims.sub.as_deref().filter(|s| !s.is_empty()));
                let granted = |need: &Need| match need {
                    Need::Repo(repo, action) => claims.access.iter().any(|g| {
                        g.kind == "repository"
                            && g.name == *repo
                            && g.actions
                                .iter()
                                .any(|a| Action::parse_scope(a).contains(action))
                    }),
                    Need::Catalog => claims
                        .access
                        .iter()
                        .any(|g| g.kind == "registry" && g.name == "catalog"),
                };
                if needs.iter().all(granted) {
                    Ok(who)
                } else {
                    Err(challenge(
                        Some("insufficient_scope"),
                        format!("the token does not grant {}", Need::scope(needs)),
                    ))
                }
            }
            Some(h) if h.len() > 6 && h[..6].eq_ignore_ascii_case("basic ") => {
                let who = self
                    .basic(&h[6..])
                    .ok_or_else(|| challenge(None, "wrong user name or password".into()))?;
                self.decide(who, needs)
            }
            Some(_) => Err(challenge(None, "unsupported authorization scheme".into())),
            None => {
                let who = Identity::default();
                if needs.iter().all(|n| self.permits(&who, n)) {
                    Ok(who)
                } else {
                    Err(challenge(None, "authentication required".into()))
                }
            }
        }
    }

    fn decide(&self, who: Identity, needs: &[Need]) -> Result<Identity, Denial> {
        match needs.iter().find(|n| !self.permits(&who, n)) {
            None => Ok(who),
            Some(n) => Err(Denial::Forbidden {
                who: who.name().to_string(),
                message: match n {
                    Need::Repo(repo, action) => {
                        format!("{} may not {} {repo}", who.name(), action.as_str())
                    }
                    Need::Catalog => format!("{} may not list repositories", who.name()),
                },
            }),
        }
    }

    pub(crate) fn identity_of(&self, user: Option<&str>) -> Identity {
        match user.and_then(|u| self.users.get(u).map(|rec| (u, rec))) {
            Some((name, rec)) => Identity {
                user: Some(name.to_string()),
                admin: rec.admin,
                groups: rec.groups.clone(),
            },
            None => Identity::default(),
        }
    }

    /// Verifies `base64(user:password)`; None if wrong.
    pub fn basic(&self, encoded: &str) -> Option<Identity> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (user, password) = text.split_once(':')?;
        self.login(user, password)
    }

    /// The ECR API's GetAuthorizationToken: a token for `user` that only
    /// logs in (user name `AWS`), never a Bearer token, for 12 hours.
    pub fn issue_login_token(&self, user: &str) -> Result<(String, u64)> {
        const TTL: u64 = 12 * 3600;
        let audience = format!("{}{LOGIN_AUDIENCE}", self.config.service);
        let token = token::sign(&self.key, &audience, Some(user), Vec::new(), TTL)?;
        Ok((token, TTL))
    }

    /// Verifies a user's password, remembering success for a minute. The
    /// user `AWS` logs in with a token of `issue_login_token`.
    pub fn login(&self, user: &str, password: &str) -> Option<Identity> {
        if user == "AWS" {
            let audience = format!("{}{LOGIN_AUDIENCE}", self.config.service);
            let claims = token::verify(&self.key, &audience, password).ok()?;
            let who = self.identity_of(claims.sub.as_deref().filter(|s| !s.is_empty()));
            return who.user.is_some().then_some(who);
        }
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(user.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        let key: [u8; 32] = h.finalize().into();
        // The users file may have changed: a cached entry is only trusted
        // for its time to live.
        {
            let mut cache = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            cache.retain(|_, (_, at)| at.elapsed() < VERIFIED_TTL);
            if cache.get(&key).is_some_and(|(u, _)| u == user) {
                return Some(self.identity_of(Some(user)));
            }
        }
        if !self.users.verify(user, password) {
            return None;
        }
        let mut cache = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(key, (user.to_string(), Instant::now()));
        Some(self.identity_of(Some(user)))
    }

    /// Answers the token endpoint: grants, for each scope asked, the actions
    /// the policies allow `who`.
    pub fn issue_token(&self, who: &Identity, scopes: &[String]) -> Result<(String, u64)> {
        let mut access = Vec::new();
        for scope in scopes {
            for one in scope.split(' ').filter(|s| !s.is_empty()) {
                let mut parts = one.rsplitn(2, ':');
                let (Some(actions), Some(rest)) = (parts.next(), parts.next()) else {
                    continue;
                };
                let Some((kind, name)) = rest.split_once(':') else {
                    continue;
                };
                let granted: Vec<String> = match kind {
                    "repository" => {
                        let allowed = self.allowed(who, name);
                        actions
                            .split(',')
                            .filter(|a| {
                                let wanted = Action::parse_scope(a);
                                !wanted.is_empty() && wanted.iter().all(|w| allowed.contains(w))
                            })
                            .map(str::to_string)
                            .collect()
                    }
                    "registry" if name == "catalog" && self.permits(who, &Need::Catalog) => {
                        vec!["*".to_string()]
                    }
                    _ => vec![],
                };
                if !granted.is_empty() {
                    access.push(Grant {
                        kind: kind.to_string(),
                        name: name.to_string(),
                        actions: granted,
                    });
                }
            }
        }
        let ttl = self.config.token_ttl_secs.max(1);
        let token = token::sign(
            &self.key,
            &self.config.service,
            who.user.as_deref(),
            access,
            ttl,
        )?;
        Ok((token, ttl))
    }
}

#[cfg(test)]
mod tests;
