//! The resume file of an `--all` rebuild: the run's [`Checkpoint`] as JSON, rewritten after every
//! page (to a temporary file, then renamed, so an interruption never leaves half a file), read
//! back by `--resume`, removed when the run completes. A dry run keeps its own file (by default
//! `…-rebuild.dry-run.checkpoint.json`), and a checkpoint records the table and whether the run
//! was dry: a resume of another table or kind is refused, so a real run never skips the pages a
//! dry run only looked at.

use std::path::{Path, PathBuf};

use activelog::application::Checkpoint;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read checkpoint {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("checkpoint {path} is of a `{found}` rebuild, not `{wanted}`")]
    OtherProjection {
        path: String,
        found: String,
        wanted: String,
    },
    #[error(
        "checkpoint {path} is of a {found} on table `{found_table}`, not a {wanted} on `{wanted_table}`"
    )]
    OtherRun {
        path: String,
        found: &'static str,
        found_table: String,
        wanted: &'static str,
        wanted_table: String,
    },
    #[error("checkpoint {path} has {found} segments; resume with --segments {found}")]
    OtherSegments { path: String, found: usize },
}

/// The checkpoint file of one run.
#[derive(Debug, Clone)]
pub struct CheckpointFile {
    path: PathBuf,
}

impl CheckpointFile {
    /// `path`, or `activelog-<projection>-rebuild.checkpoint.json` in the working directory
    /// (`activelog-<projection>-rebuild.dry-run.checkpoint.json` for a dry run).
    pub fn new(path: Option<PathBuf>, projection: &str, dry_run: bool) -> Self {
        let kind = if dry_run { ".dry-run" } else { "" };
        Self {
            path: path.unwrap_or_else(|| {
                PathBuf::from(format!(
                    "activelog-{projection}-rebuild{kind}.checkpoint.json"
                ))
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The checkpoint to resume from, checked to be of this projection, table, kind of run (dry
    /// or not) and segment count.
    pub fn load(
        &self,
        projection: &str,
        table: &str,
        dry_run: bool,
        segments: u32,
    ) -> Result<Checkpoint, CheckpointError> {
        let path = self.path.display().to_string();
        let text = std::fs::read_to_string(&self.path).map_err(|e| CheckpointError::Read {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let checkpoint: Checkpoint =
            serde_json::from_str(&text).map_err(|e| CheckpointError::Read {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if checkpoint.projection != projection {
            return Err(CheckpointError::OtherProjection {
                path,
                found: checkpoint.projection,
                wanted: projection.to_owned(),
            });
        }
        if checkpoint.table != table || checkpoint.dry_run != dry_run {
            let kind = |dry: bool| if dry { "dry run" } else { "real run" };
            return Err(CheckpointError::OtherRun {
                path,
                found: kind(checkpoint.dry_run),
                found_table: checkpoint.table,
                wanted: kind(dry_run),
                wanted_table: table.to_owned(),
            });
        }
        if checkpoint.segments.len() != segments as usize {
            return Err(CheckpointError::OtherSegments {
                path,
                found: checkpoint.segments.len(),
            });
        }
        Ok(checkpoint)
    }

    pub fn save(&self, checkpoint: &Checkpoint) -> Result<(), String> {
        let text = serde_json::to_string_pretty(checkpoint).map_err(|e| e.to_string())?;
        let temporary = self.path.with_extension("json.tmp");
        std::fs::write(&temporary, text).map_err(|e| e.to_string())?;
        std::fs::rename(&temporary, &self.path).map_err(|e| e.to_string())
    }

    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use activelog::application::{ScanPosition, SegmentState};

    #[test]
    fn a_saved_checkpoint_resumes_only_the_same_run() {
        let dir = std::env::temp_dir().join(format!("activelog-admin-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = CheckpointFile::new(Some(dir.join("run.json")), "stats", false);
        let mut checkpoint = Checkpoint::new("stats", 2).for_run("Table", false);
        checkpoint.segments[0] = SegmentState::Done;
        checkpoint.segments[1] =
            SegmentState::After(ScanPosition(serde_json::json!({"PK": "USER#a", "SK": "x"})));
        file.save(&checkpoint).unwrap();
        assert_eq!(file.load("stats", "Table", false, 2).unwrap(), checkpoint);
        assert!(matches!(
            file.load("achievements", "Table", false, 2),
            Err(CheckpointError::OtherProjection { .. })
        ));
        assert!(matches!(
            file.load("stats", "Table", false, 4),
            Err(CheckpointError::OtherSegments { found: 2, .. })
        ));
        assert!(matches!(
            file.load("stats", "OtherTable", false, 2),
            Err(CheckpointError::OtherRun { .. })
        ));
        file.remove();
        assert!(matches!(
            file.load("stats", "Table", false, 2),
            Err(CheckpointError::Read { .. })
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A dry run keeps its own file by default, and a real run refuses to resume a dry run's
    /// checkpoint (it would skip every page the dry run only looked at).
    #[test]
    fn a_real_run_never_resumes_a_dry_run() {
        let dry = CheckpointFile::new(None, "stats", true);
        let real = CheckpointFile::new(None, "stats", false);
        assert_ne!(dry.path(), real.path());

        let dir = std::env::temp_dir().join(format!("activelog-admin-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = CheckpointFile::new(Some(dir.join("run.json")), "stats", true);
        let mut checkpoint = Checkpoint::new("stats", 1).for_run("Table", true);
        checkpoint.segments[0] =
            SegmentState::After(ScanPosition(serde_json::json!({"PK": "USER#a", "SK": "x"})));
        file.save(&checkpoint).unwrap();
        assert!(matches!(
            file.load("stats", "Table", false, 1),
            Err(CheckpointError::OtherRun { .. })
        ));
        assert_eq!(file.load("stats", "Table", true, 1).unwrap(), checkpoint);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
