//! `backup` and `restore` of user-owned data (JSON lines of hex key/value pairs).

use anyhow::Context as _;
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

pub fn backup(store: &dyn Backend, file: &Path) -> anyhow::Result<()> {
    let entries = store.export_user_data()?;
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(file).with_context(|| format!("creating {}", file.display()))?);
    for (k, v) in &entries {
        serde_json::to_writer(&mut out, &Line { key: hex(k), value: hex(v) })?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    println!("wrote {} entries of user data to {}", entries.len(), file.display());
    Ok(())
}

pub fn restore(store: &dyn Backend, file: &Path) -> anyhow::Result<()> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut entries = Vec::new();
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line: Line = serde_json::from_str(&line?).with_context(|| format!("{} line {}", file.display(), n + 1))?;
        entries.push((unhex(&line.key)?, unhex(&line.value)?));
    }
    store.import_user_data(&entries)?;
    println!("restored {} entries of user data from {}", entries.len(), file.display());
    Ok(())
}
