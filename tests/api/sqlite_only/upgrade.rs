//! A database made by the current release (its migrations 0001 and 0002, its rows) upgrades in
//! place through the append-only migrations: the admin signs in, the connection and its history
//! are there and work, and the API key the clinic's systems hold still works.

use std::borrow::Cow;

use clinic_connect::auth::hash_password;
use clinic_connect::clock::{Clock, ManualClock};
use clinic_connect::connections::connection_binding;
use clinic_connect::sandbox::{self, YAPPOINTMENT_COMPANY_NAME};
use clinic_connect::startup::Application;
use clinic_connect::vault::{lookup_hash, Vault};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool};

use crate::helpers::{test_settings, Browser, PASSWORD};

#[tokio::test]
async fn a_database_made_by_the_current_release_upgrades_in_place() {
    let clock = ManualClock::starting_now();
    let sandbox = sandbox::build("127.0.0.1:0", clock.clone(), 1).unwrap();
    let control = sandbox.control.clone();
    let sandbox_url = sandbox.base_url.clone();
    tokio::spawn(sandbox.server);
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(dir.path(), &sandbox_url);
    let vault = Vault::from_keyring(settings.token_keys.as_ref().unwrap()).unwrap();
    let now = clock.now();

    // The release's schema, applied by sqlx as that release did, and rows as it wrote them.
    {
        let options = SqliteConnectOptions::new()
            .filename(settings.database_path())
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        let all = sqlx::migrate!("./migrations/sqlite");
        let released = Migrator {
            migrations: Cow::Owned(all.migrations.iter().filter(|m| m.version <= 2).cloned().collect()),
            ..Migrator::DEFAULT
        };
        released.run(&pool).await.unwrap();
        sqlx::query("INSERT INTO clinics (id, name, created_at) VALUES (1, 'Clinic A', ?)")
            .bind(now)
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO admins (clinic_id, email, password_hash, created_at) VALUES (1, 'Admin@Clinic-A.test', ?, ?)",
        )
        .bind(hash_password(&SecretString::from(PASSWORD)).unwrap())
        .bind(now)
        .execute(&pool)
        .await
        .unwrap();
        let grant = control.yappointment_grants(1).pop().unwrap();
        let binding = |column| connection_binding(1, "yappointment", column);
        let access = vault.seal_str(&SecretString::from(grant.access_token), &binding("access_token")).unwrap();
        let refresh =
            vault.seal_str(&SecretString::from(grant.refresh_token.unwrap()), &binding("refresh_token")).unwrap();
        sqlx::query(
            "INSERT INTO connections (clinic_id, vendor, environment, status, access_token, refresh_token, token_type,
               scopes, expires_at, account_name, parameters, version, connected_at, updated_at)
             VALUES (1, 'yappointment', 'production', 'connected', ?, ?, 'Bearer', 'bookings:read', ?, ?, '{}', 1, ?, ?)",
        )
        .bind(access)
        .bind(refresh)
        .bind(now + grant.expires_in)
        .bind(YAPPOINTMENT_COMPANY_NAME)
        .bind(now)
        .bind(now)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO connection_events (clinic_id, vendor, at, kind, detail) VALUES (1, 'yappointment', ?, 'connected', 'Connected before the upgrade')")
            .bind(now)
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO api_keys (clinic_id, key_hash, label, created_at) VALUES (1, ?, 'service', ?)")
            .bind(lookup_hash("cck_released_key_0123456789abcdefghijklmnopq"))
            .bind(now)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }

    // This release opens it: the new migrations run, and everything is there and works.
    let app = Application::build(settings.clone(), clock.clone()).await.unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let db = app.db().clone();
    tokio::spawn(app.run_until_stopped());
    let admin = Browser::new(&address);
    admin.login("admin@clinic-a.test", PASSWORD).await;
    let page = admin.get_text("/connections/yappointment").await;
    assert!(page.contains(YAPPOINTMENT_COMPANY_NAME), "{page}");
    assert!(page.contains("Connected before the upgrade"), "{page}");
    let proxied = reqwest::Client::new()
        .post(format!("{address}/api/v1/connections/yappointment/proxy/api/v1/me"))
        .bearer_auth("cck_released_key_0123456789abcdefghijklmnopq")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), StatusCode::OK);
    // The new columns start empty, and the new features work on the old rows.
    let row = db.connection(1, "yappointment").await.unwrap().unwrap();
    assert_eq!((row.trouble, row.version), (None, 1));
    let keys = db.api_keys_of_clinic(1).await.unwrap();
    assert_eq!((keys.len(), keys[0].revoked_at), (1, None));
    assert!(keys[0].last_used_at.is_some(), "the key's use was noted");
    // A refresh of the old row stores the rotated token under the new schema's bookkeeping.
    let csrf = admin.csrf("/connections/yappointment").await;
    admin.post_form("/connections/yappointment/refresh", &[("csrf", &csrf)]).await;
    assert!(admin.get_text("/connections/yappointment").await.contains("access token was refreshed"));
    let refreshed = db.connection(1, "yappointment").await.unwrap().unwrap();
    assert_eq!(refreshed.version, 2);
    let binding = connection_binding(1, "yappointment", "refresh_token");
    let opened = vault.open_str(refreshed.refresh_token.as_ref().unwrap(), &binding).unwrap();
    assert!(control.yappointment_refresh_token_is_live(opened.expose_secret()));
}
