use super::*;
use crate::config::Policy;

fn auth(policies: Vec<Policy>) -> (tempfile::TempDir, Auth) {
    let dir = tempfile::tempdir().unwrap();
    let auth = Auth::new(dir.path(), AuthConfig::default(), policies).unwrap();
    auth.users
        .add("alice", "alice-password", false, vec!["devs".into()])
        .unwrap();
    auth.users
        .add("root", "root-password", true, vec![])
        .unwrap();
    (dir, auth)
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn policy(glob: &str, actions: &[Action]) -> Policy {
    Policy {
        repositories: glob.into(),
        users: vec![],
        groups: vec!["devs".into()],
        anonymous: false,
        actions: actions.to_vec(),
    }
}

#[test]
fn anonymous_is_challenged_and_wrong_passwords_fail() {
    let (_d, auth) = auth(vec![policy("team/*", &[Action::Pull, Action::Push])]);
    let need = [Need::Repo("team/app".into(), Action::Push)];
    match auth.authorize(None, &need) {
        Err(Denial::Challenge { scope, .. }) => assert_eq!(scope, "repository:team/app:push"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        auth.authorize(Some(&basic("alice", "wrong")), &need),
        Err(Denial::Challenge { .. })
    ));
    assert_eq!(
        auth.authorize(Some(&basic("alice", "alice-password")), &need)
            .unwrap()
            .name(),
        "alice"
    );
    // Authenticated but not granted: 403.
    let other = [Need::Repo("other/app".into(), Action::Pull)];
    assert!(matches!(
        auth.authorize(Some(&basic("alice", "alice-password")), &other),
        Err(Denial::Forbidden { .. })
    ));
    assert!(auth
        .authorize(Some(&basic("root", "root-password")), &other)
        .is_ok());
}

#[test]
fn tokens_carry_only_what_was_granted() {
    let (_d, auth) = auth(vec![policy("a", &[Action::Pull, Action::Push])]);
    let alice = auth.login("alice", "alice-password").unwrap();
    let (token, _) = auth
        .issue_token(
            &alice,
            &["repository:a:pull,push repository:b:pull,push".into()],
        )
        .unwrap();
    let bearer = format!("Bearer {token}");
    assert!(auth
        .authorize(Some(&bearer), &[Need::Repo("a".into(), Action::Push)])
        .is_ok());
    match auth.authorize(Some(&bearer), &[Need::Repo("b".into(), Action::Push)]) {
        Err(Denial::Challenge { error, .. }) => assert_eq!(error, Some("insufficient_scope")),
        other => panic!("{other:?}"),
    }
    // A token signed by someone else, or tampered with, is refused.
    let mut forged = token.clone();
    forged.pop();
    assert!(auth
        .authorize(
            Some(&format!("Bearer {forged}")),
            &[Need::Repo("a".into(), Action::Pull)]
        )
        .is_err());
}

#[test]
fn expired_tokens_are_refused() {
    let (_d, auth) = auth(vec![]);
    let grant = Grant {
        kind: "repository".into(),
        name: "a".into(),
        actions: vec!["pull".into()],
    };
    let mut claims_token =
        token::sign(&auth.key, auth.service(), Some("root"), vec![grant], 0).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let err = auth
        .authorize(
            Some(&format!("Bearer {claims_token}")),
            &[Need::Repo("a".into(), Action::Pull)],
        )
        .unwrap_err();
    match err {
        Denial::Challenge { error, message, .. } => {
            assert_eq!(error, Some("invalid_token"));
            assert!(message.contains("xpired"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    claims_token.clear();
}
