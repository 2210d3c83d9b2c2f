//! The data folder and the database files are created owner-only (0700 and 0600, the -wal and
//! -shm files included); files that already exist and others may read get a warning naming them.

use std::os::unix::fs::PermissionsExt;

use crate::helpers::{captured_logs, spawn_app_with};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_data_folder_and_database_files_are_owner_only() {
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("fresh-data");
    let app = spawn_app_with(|s| {
        s.database_url = None;
        s.data_dir = data.clone();
        // Development keys, generated into the data folder on first start.
        s.token_keys = None;
        s.session_key = None;
    })
    .await;
    app.login().await;
    assert_eq!(mode(&data), 0o700);
    let keys: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with("clinic-connect.db"))
        .collect();
    assert_eq!(keys.len(), 1, "the development keys: {keys:?}");
    assert_eq!(mode(&keys[0]), 0o600, "{}", keys[0].display());
    for suffix in ["", "-wal", "-shm"] {
        let file = data.join(format!("clinic-connect.db{suffix}"));
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

#[tokio::test]
async fn an_existing_database_file_others_can_read_gets_a_warning_naming_it() {
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("shared-data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = data.join("clinic-connect.db");
    std::fs::write(&file, b"").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _app = spawn_app_with(|s| {
        s.database_url = None;
        s.data_dir = data.clone();
    })
    .await;
    let logs = captured_logs();
    for path in [&data, &file] {
        let line =
            logs.lines().find(|l| l.contains("readable by group or others") && l.contains(&*path.to_string_lossy()));
        assert!(line.is_some(), "no warning names {}", path.display());
    }
}
