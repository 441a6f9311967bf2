//! Finding the account's files: the root itself, or every `.vcf` / `.ics`
//! below a directory (hidden entries skipped, directory symlinks not followed).

use contactbridge_connector::{Collection, CollectionKind, Error, ErrorKind};
use std::path::{Path, PathBuf};

fn kind_of(path: &Path) -> Option<CollectionKind> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "vcf" | "vcard" => Some(CollectionKind::AddressBook),
        "ics" | "ical" => Some(CollectionKind::Calendar),
        _ => None,
    }
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    let (kind, what) = match e.kind() {
        std::io::ErrorKind::NotFound => (ErrorKind::NotFound, "does not exist"),
        std::io::ErrorKind::PermissionDenied => (ErrorKind::Forbidden, "is not readable (permission denied)"),
        _ => (ErrorKind::Local, "cannot be read"),
    };
    Error::new(kind, format!("{} {what}: {e}", path.display())).with_source(e)
}

/// The path exists and can be read: a .vcf/.ics file, or a directory.
pub(crate) fn check(root: &Path) -> Result<(), Error> {
    let meta = std::fs::metadata(root).map_err(|e| io_error(root, e))?;
    if meta.is_dir() {
        std::fs::read_dir(root).map_err(|e| io_error(root, e))?;
        return Ok(());
    }
    if kind_of(root).is_none() {
        return Err(Error::new(
            ErrorKind::Local,
            format!("{} is neither a directory nor a .vcf or .ics file", root.display()),
        ));
    }
    std::fs::File::open(root).map_err(|e| io_error(root, e))?;
    Ok(())
}

/// One collection per file, sorted by id.
pub(crate) fn collections(root: &Path) -> Result<Vec<Collection>, Error> {
    check(root)?;
    let files = if root.is_dir() {
        let mut files = Vec::new();
        walk(root, &mut files)?;
        files
    } else {
        vec![root.to_path_buf()]
    };
    let base = if root.is_dir() { root } else { root.parent().unwrap_or(Path::new("")) };
    let mut out: Vec<Collection> = files
        .into_iter()
        .filter_map(|path| {
            let kind = kind_of(&path)?;
            let relative = path.strip_prefix(base).unwrap_or(&path);
            let id = relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
            let name = path.file_stem().map_or_else(|| id.clone(), |s| s.to_string_lossy().into_owned());
            Some(Collection { id, name, kind, owner: None })
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let file_type = entry.file_type().map_err(|e| io_error(&path, e))?;
        if file_type.is_dir() {
            walk(&path, out)?;
        } else if kind_of(&path).is_some() && (file_type.is_file() || file_type.is_symlink()) {
            // A link is listed whether its target exists or not; reading it decides
            // (and, for a confined account, refuses one that leads out of the folder).
            out.push(path);
        }
    }
    Ok(())
}
