//! What an account registered by a tenant admin may reach: files only inside the
//! operator's `[accounts] files_roots`, Graph only at Microsoft's endpoints (or
//! allow-listed hosts). DAV hosts are checked by the connector when it connects.
//!
//! A refusal says why in the same words whether the target exists or not.

use contactbridge_connector::{echo, NetPolicy};
use std::path::{Component, Path, PathBuf};

/// Microsoft's identity provider hosts (worldwide and national clouds).
const LOGIN_HOSTS: &[&str] = &[
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "login.partner.microsoftonline.cn",
    "login.microsoftonline.de",
];

/// Microsoft's Graph hosts.
const GRAPH_HOSTS: &[&str] = &[
    "graph.microsoft.com",
    "graph.microsoft.us",
    "dod-graph.microsoft.us",
    "graph.microsoft.de",
    "microsoftgraph.chinacloudapi.cn",
    "canary.graph.microsoft.com",
];

/// The roots for `tenant`: `{tenant}` replaced; roots naming it are left out without a tenant.
fn roots_for(roots: &[PathBuf], tenant: Option<&str>) -> Vec<PathBuf> {
    roots
        .iter()
        .filter_map(|r| {
            let text = r.to_string_lossy();
            if !text.contains("{tenant}") {
                return Some(r.clone());
            }
            let t = tenant.filter(|t| !t.is_empty() && !t.contains(['/', '\\']) && *t != "." && *t != "..")?;
            Some(PathBuf::from(text.replace("{tenant}", t)))
        })
        .collect()
}

/// `path` is absolute, without `..`, and (symbolic links resolved where it exists)
/// inside one of the roots. The answer does not depend on whether `path` exists.
pub fn check_files_path(path: &Path, roots: &[PathBuf], tenant: Option<&str>) -> Result<(), String> {
    let roots = roots_for(roots, tenant);
    let shown = path.to_string_lossy();
    let shown = echo(&shown);
    let refused = || {
        if roots.is_empty() {
            format!(
                "{}: the server's operator allows no directories for files accounts registered by tenant admins \
                 ([accounts] files_roots)",
                shown
            )
        } else {
            format!(
                "{}: files accounts registered by tenant admins may only read inside the directories the server's \
                 operator allows ([accounts] files_roots)",
                shown
            )
        }
    };
    if !path.is_absolute() || path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(refused());
    }
    // Judged by where it really is: links in the part that exists are resolved.
    let real = real_path(path);
    let inside = roots.iter().any(|root| root.is_absolute() && real.starts_with(real_path(root)));
    if inside {
        Ok(())
    } else {
        Err(refused())
    }
}

/// The longest existing ancestor of `path` canonicalized, the rest appended as written.
fn real_path(path: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut at = path;
    loop {
        if let Ok(real) = at.canonicalize() {
            return rest.iter().rev().fold(real, |p, c| p.join(c));
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                at = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// A Graph account of a tenant admin talks only to Microsoft (HTTPS) or to hosts the
/// operator allows: its authority, token and device code URLs and its Graph base.
pub fn check_graph_endpoints(g: &contactbridge_graph::GraphAccount, policy: &NetPolicy) -> Result<(), String> {
    let endpoints = [
        ("authority", g.authority.clone(), LOGIN_HOSTS),
        ("token_url", g.token_url(), LOGIN_HOSTS),
        ("device_code_url", g.device_code_url(), LOGIN_HOSTS),
        ("graph_base", g.graph_base.clone(), GRAPH_HOSTS),
    ];
    let mut all_allowed = true;
    for (field, url, known) in endpoints {
        let parsed = url::Url::parse(&url).map_err(|e| format!("{field} {} is not a URL: {e}", echo(&url)))?;
        let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
        if policy.host_allowed(&host) {
            continue;
        }
        all_allowed = false;
        if parsed.scheme() != "https" || !known.contains(&host.as_str()) {
            return Err(format!(
                "{field}: {} is not a Microsoft endpoint; Graph accounts registered by tenant admins reach only \
                 Microsoft over HTTPS (the server's operator may allow a host in [accounts] allow_hosts)",
                echo(&host)
            ));
        }
    }
    if !g.https_only && !all_allowed {
        return Err("https_only: Graph accounts registered by tenant admins use HTTPS only".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_stay_inside_the_roots_whatever_exists() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("acme");
        std::fs::create_dir_all(root.join("cards")).unwrap();
        let roots = vec![dir.path().join("{tenant}")];
        assert!(check_files_path(&root.join("cards"), &roots, Some("acme")).is_ok());
        assert!(check_files_path(&root.join("missing"), &roots, Some("acme")).is_ok());
        // Another tenant's root, existing or not, and paths outside: the same answer.
        let a = check_files_path(&root.join("cards"), &roots, Some("other")).unwrap_err();
        let b = check_files_path(&root.join("nothing"), &roots, Some("other")).unwrap_err();
        assert_eq!(a.replace("cards", "X"), b.replace("nothing", "X"));
        assert!(check_files_path(Path::new("/proc/1/environ"), &roots, Some("acme")).is_err());
        assert!(check_files_path(&root.join("../other"), &roots, Some("acme")).is_err());
        assert!(check_files_path(Path::new("cards"), &roots, Some("acme")).is_err());
        assert!(check_files_path(&root.join("cards"), &roots, None).is_err());
        assert!(check_files_path(&root.join("cards"), &[], Some("acme")).unwrap_err().contains("allows no"));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc", root.join("out")).unwrap();
            assert!(check_files_path(&root.join("out/passwd"), &roots, Some("acme")).is_err());
        }
    }
}
