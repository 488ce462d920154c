//! Admin API tokens.

use scomo_server::store::TokenId;

use crate::harness::{t, Db};

pub(crate) async fn create_verify_list_revoke(db: &impl Db) {
    let store = db.open().await;
    let (admin, admin_secret) = store.create_token("admin", t(1)).await.unwrap();
    let (ci, ci_secret) = store.create_token("ci", t(2)).await.unwrap();
    assert_ne!(admin.id, ci.id);
    assert_ne!(admin_secret.expose(), ci_secret.expose());
    assert!(admin_secret.expose().starts_with("scomo_"));
    assert_eq!(admin_secret.expose().len(), "scomo_".len() + 43);
    assert!(!format!("{admin_secret:?}").contains(admin_secret.expose()));
    assert_eq!(admin.name, "admin");
    assert_eq!(admin.created_at, t(1));

    let ok = store
        .verify_token(admin_secret.expose(), t(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ok.id, admin.id);
    assert_eq!(ok.last_used_at, Some(t(10)));
    assert_eq!(
        store.verify_token("scomo_wrong", t(10)).await.unwrap(),
        None
    );
    assert_eq!(store.verify_token("", t(10)).await.unwrap(), None);
    let mut altered = admin_secret.expose().to_owned();
    altered.pop();
    assert_eq!(store.verify_token(&altered, t(10)).await.unwrap(), None);

    let listed = store.tokens().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, admin.id);
    assert_eq!(listed[0].last_used_at, Some(t(10)));
    assert_eq!(listed[1], ci);

    assert!(store.revoke_token(admin.id, t(20)).await.unwrap());
    assert!(!store.revoke_token(admin.id, t(21)).await.unwrap());
    assert!(!store.revoke_token(TokenId(999_999), t(21)).await.unwrap());
    assert_eq!(
        store
            .verify_token(admin_secret.expose(), t(22))
            .await
            .unwrap(),
        None
    );
    assert!(store
        .verify_token(ci_secret.expose(), t(22))
        .await
        .unwrap()
        .is_some());
    let listed = store.tokens().await.unwrap();
    assert_eq!(listed[0].revoked_at, Some(t(20)));
    assert_eq!(listed[1].revoked_at, None);
}
