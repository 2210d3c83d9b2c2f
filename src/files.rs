//! The files the app keeps on disk (the data folder, the SQLite database, development keys) hold
//! sealed secrets: they are created readable by their owner only, and one found readable by others
//! is named in a warning.

use std::path::Path;

use anyhow::Context;

/// The data folder, owner-only (0700) when created; an existing one that others may read gets a
/// warning naming it.
pub fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        warn_if_readable_by_others(dir);
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Warns (naming the file) when a file or folder exists and its group or others may read it.
pub fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{:o}", mode & 0o777),
                    "readable by group or others; it holds sealed secrets: make it owner-only (chmod go-rwx)"
                );
            }
        }
    }
}
