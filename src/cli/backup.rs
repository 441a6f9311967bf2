//! `backup` and `restore` of user-owned data (JSON lines of hex key/value pairs).

use anyhow::Context as _;
use contactbridge::config::Config;
use contactbridge::store::Backend;
use std::io::{BufRead, Write};
use std::path::Path;

#[derive(serde::Serialize, serde::Deserialize)]
struct Line {
    key: String,
    value: String,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len()).step_by(2).map(|i| Ok(u8::from_str_radix(&s[i..i + 2], 16)?)).collect()
}

/// Writes every entry that can be read; fails (after writing them) when some could not be.
pub fn backup(store: &dyn Backend, file: &Path) -> anyhow::Result<()> {
    let export = store.export_user_data();
    let mut out = super::session::OutFile::create(file).with_context(|| format!("creating {}", file.display()))?;
    for (k, v) in &export.entries {
        serde_json::to_writer(&mut out, &Line { key: hex(k), value: hex(v) })?;
        out.write_all(b"\n")?;
    }
    out.finish().with_context(|| format!("writing {}", file.display()))?;
    outln!("wrote {} entries of user data to {}", export.entries.len(), file.display());
    for gap in &export.unreadable {
        outln!("could not read {gap}");
    }
    anyhow::ensure!(
        export.unreadable.is_empty(),
        "{} stretch(es) of user data could not be read (listed above); the backup holds everything else",
        export.unreadable.len()
    );
    Ok(())
}

/// Replaces the user data with a backup's. The store's user data is not
/// opened first (it may be what is damaged): it is moved aside.
pub fn restore(config: &Config, file: &Path) -> anyhow::Result<()> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut entries = Vec::new();
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line: Line = serde_json::from_str(&line?).with_context(|| format!("{} line {}", file.display(), n + 1))?;
        entries.push((unhex(&line.key)?, unhex(&line.value)?));
    }
    let (store, aside) = contactbridge::store::restore(&config.store.open_options(&config.data_dir), &entries)
        .with_context(|| format!("restoring into {}", config.data_dir.display()))?;
    store.flush()?;
    outln!("restored {} entries of user data from {}", entries.len(), file.display());
    if let Some(aside) = aside {
        outln!("the user data it replaced is kept in {} (delete it when satisfied)", aside.display());
    }
    Ok(())
}
