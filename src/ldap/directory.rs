//! The directory tree, its entries and search filters over the index.
//!
//! ```text
//! dc=contactbridge
//! └── ou=<tenant>
//!     └── ou=<user>
//!         └── uid=<contact id>    cn, sn, givenName, displayName, o, title, mail,
//!                                  telephoneNumber, mobile, homePhone, facsimileTelephoneNumber
//! ```
//!
//! Number assertions (`telephoneNumber=…`, `mobile=…`, `homePhone=…`, and
//! substrings of 6 or more digits) are matched as a call from that number
//! would be ([`crate::resolve::find_candidates`]): `(030) 123 45 67` answers
//! a search for `+49301234567`. Name assertions compare case-insensitively.

use crate::connector::PhoneKind;
use crate::phone::{self, Cli, Region};
use crate::store::{RecordRef, Store, StoreError, StoredContact};
use crate::user::{UserId, UserProfile};
use ldap3_proto::proto::{LdapFilter, LdapPartialAttribute, LdapSearchResultEntry, LdapSubstringFilter};
use std::collections::{HashMap, HashSet};

/// The directory's suffix.
pub const SUFFIX: &str = "dc=contactbridge";

/// Where a DN points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The empty DN (the root DSE).
    Root,
    /// `dc=contactbridge`.
    Suffix,
    /// `ou=<tenant>,dc=contactbridge`.
    Tenant(String),
    /// `ou=<user>,ou=<tenant>,dc=contactbridge`.
    User(String, String),
    /// `uid=<id>,ou=<user>,ou=<tenant>,dc=contactbridge`.
    Contact(String, String, String),
    /// `cn=<label>,ou=<tenant>,dc=contactbridge`: a bind name for a tenant's phones.
    TenantBinder(String),
}

/// Reads a DN into a [`Place`]; `None` for anything outside the tree.
/// Attribute names are case-insensitive, spaces around `,` and `=` are ignored;
/// escaped commas are not supported (tenant and user ids have none).
pub fn place(dn: &str) -> Option<Place> {
    let dn = dn.trim();
    if dn.is_empty() {
        return Some(Place::Root);
    }
    let mut rdns = Vec::new();
    for rdn in dn.split(',') {
        let (attr, value) = rdn.split_once('=')?;
        let value = value.trim();
        if value.is_empty() || value.contains(['\\', '+', '"']) {
            return None;
        }
        rdns.push((attr.trim().to_ascii_lowercase(), value.to_string()));
    }
    let (attr, value) = rdns.pop()?;
    if attr != "dc" || !value.eq_ignore_ascii_case("contactbridge") {
        return None;
    }
    let names: Vec<(&str, &str)> = rdns.iter().rev().map(|(a, v)| (a.as_str(), v.as_str())).collect();
    Some(match names.as_slice() {
        [] => Place::Suffix,
        [("ou", t)] => Place::Tenant(t.to_string()),
        [("ou", t), ("cn", _)] => Place::TenantBinder(t.to_string()),
        [("ou", t), ("ou", u)] => Place::User(t.to_string(), u.to_string()),
        [("ou", t), ("ou", u), ("uid", c)] => Place::Contact(t.to_string(), u.to_string(), c.to_string()),
        _ => return None,
    })
}

pub fn tenant_dn(tenant: &str) -> String {
    format!("ou={tenant},{SUFFIX}")
}

pub fn user_dn(tenant: &str, user: &str) -> String {
    format!("ou={user},{}", tenant_dn(tenant))
}

/// A contact's stable id in the directory: a hash of where it is stored.
pub fn contact_uid(at: &RecordRef) -> String {
    let text = format!("{}\u{0}{}\u{0}{}", at.account, at.collection, at.id.as_str());
    crate::tokens::sha256_hex(&text)[..20].to_string()
}

/// Attribute names that hold phone numbers, and which kinds each lists.
fn phone_kinds(attr: &str) -> Option<&'static [PhoneKind]> {
    Some(match attr {
        "telephonenumber" => &[PhoneKind::Work, PhoneKind::Other],
        "mobile" => &[PhoneKind::Mobile],
        "homephone" => &[PhoneKind::Home],
        "facsimiletelephonenumber" => &[PhoneKind::Fax],
        "pager" => &[PhoneKind::Pager],
        _ => return None,
    })
}

const OBJECT_CLASSES: [&str; 4] = ["top", "person", "organizationalPerson", "inetOrgPerson"];

/// The values of one attribute (lower-case name) of a contact.
fn values(c: &StoredContact, attr: &str) -> Vec<String> {
    let contact = &c.contact;
    if let Some(kinds) = phone_kinds(attr) {
        return contact.phones.iter().filter(|p| kinds.contains(&p.kind)).map(|p| p.raw.clone()).collect();
    }
    let opt = |v: &Option<String>| v.iter().filter(|s| !s.trim().is_empty()).cloned().collect::<Vec<_>>();
    match attr {
        "objectclass" => OBJECT_CLASSES.iter().map(|s| s.to_string()).collect(),
        "cn" | "displayname" => vec![contact.best_name()],
        "sn" => {
            let sn = opt(&contact.family_name);
            if sn.is_empty() {
                vec![contact.best_name()]
            } else {
                sn
            }
        }
        "givenname" => opt(&contact.given_name),
        "o" => opt(&contact.company),
        "title" => opt(&contact.job_title),
        "mail" => contact.emails.clone(),
        "uid" => vec![contact_uid(&c.at)],
        _ => Vec::new(),
    }
}

/// The attributes listed in an entry, by their LDAP names.
const ATTRIBUTES: [&str; 13] = [
    "objectClass",
    "uid",
    "cn",
    "sn",
    "givenName",
    "displayName",
    "o",
    "title",
    "mail",
    "telephoneNumber",
    "mobile",
    "homePhone",
    "facsimileTelephoneNumber",
];

/// Which attributes a search asked for: all (none named, or `*`), none (`1.1`), or these.
pub fn wanted(attrs: &[String]) -> Option<HashSet<String>> {
    if attrs.is_empty() || attrs.iter().any(|a| a == "*") {
        return None;
    }
    Some(attrs.iter().map(|a| a.to_ascii_lowercase()).collect())
}

/// A contact as a directory entry.
pub fn entry(
    tenant: &str,
    user: &UserId,
    c: &StoredContact,
    wanted: &Option<HashSet<String>>,
) -> LdapSearchResultEntry {
    let attributes = ATTRIBUTES
        .iter()
        .filter(|a| wanted.as_ref().is_none_or(|w| w.contains(&a.to_ascii_lowercase())))
        .filter_map(|a| {
            let vals = values(c, &a.to_ascii_lowercase());
            (!vals.is_empty()).then(|| LdapPartialAttribute {
                atype: a.to_string(),
                vals: vals.into_iter().map(String::into_bytes).collect(),
            })
        })
        .collect();
    LdapSearchResultEntry { dn: format!("uid={},{}", contact_uid(&c.at), user_dn(tenant, user.as_str())), attributes }
}

/// A container entry (the tenant or the user).
pub fn container(dn: String, ou: &str, wanted: &Option<HashSet<String>>) -> LdapSearchResultEntry {
    let all =
        [("objectClass", vec!["top".to_string(), "organizationalUnit".to_string()]), ("ou", vec![ou.to_string()])];
    LdapSearchResultEntry {
        dn,
        attributes: all
            .into_iter()
            .filter(|(a, _)| wanted.as_ref().is_none_or(|w| w.contains(&a.to_ascii_lowercase())))
            .map(|(a, v)| LdapPartialAttribute {
                atype: a.into(),
                vals: v.into_iter().map(String::into_bytes).collect(),
            })
            .collect(),
    }
}

/// Evaluates a filter against one user's contacts; number assertions go
/// through the index as a call's CLI would, once per value.
pub struct Matcher<'a> {
    store: &'a dyn Store,
    user: &'a UserProfile,
    region: Option<Region>,
    /// Number text → the contacts a call from it would match.
    numbers: HashMap<String, HashSet<RecordRef>>,
}

/// Number assertions need this many digits before they are matched as numbers.
const MIN_NUMBER_DIGITS: usize = 6;

impl<'a> Matcher<'a> {
    pub fn new(store: &'a dyn Store, user: &'a UserProfile) -> Self {
        let region = user.region.as_deref().and_then(|r| Region::parse(r).ok());
        Self { store, user, region, numbers: HashMap::new() }
    }

    /// The contacts a call from `text` would match (none if it is not a number).
    fn by_number(&mut self, text: &str) -> Result<&HashSet<RecordRef>, StoreError> {
        if !self.numbers.contains_key(text) {
            let mut found = HashSet::new();
            if let Ok(Cli::Number(n)) = phone::parse_cli(text, self.region.as_ref()) {
                for c in crate::resolve::find_candidates(self.store, &self.user.id, &n)? {
                    found.insert(c.stored.at);
                }
            }
            self.numbers.insert(text.to_string(), found);
        }
        Ok(&self.numbers[text])
    }

    pub fn matches(&mut self, f: &LdapFilter, c: &StoredContact) -> Result<bool, StoreError> {
        Ok(match f {
            LdapFilter::And(fs) => {
                for f in fs {
                    if !self.matches(f, c)? {
                        return Ok(false);
                    }
                }
                true
            }
            LdapFilter::Or(fs) => {
                for f in fs {
                    if self.matches(f, c)? {
                        return Ok(true);
                    }
                }
                false
            }
            LdapFilter::Not(f) => !self.matches(f, c)?,
            LdapFilter::Present(a) => !values(c, &a.to_ascii_lowercase()).is_empty(),
            LdapFilter::Equality(a, v) | LdapFilter::Approx(a, v) => {
                let attr = a.to_ascii_lowercase();
                if phone_kinds(&attr).is_some() {
                    !values(c, &attr).is_empty() && self.by_number(v)?.contains(&c.at)
                } else {
                    values(c, &attr).iter().any(|x| x.trim().to_lowercase() == v.trim().to_lowercase())
                }
            }
            LdapFilter::Substring(a, sub) => {
                let attr = a.to_ascii_lowercase();
                if phone_kinds(&attr).is_some() {
                    self.number_substring(&attr, sub, c)?
                } else {
                    values(c, &attr).iter().any(|x| substring(&x.to_lowercase(), sub))
                }
            }
            LdapFilter::GreaterOrEqual(..) | LdapFilter::LessOrEqual(..) | LdapFilter::Extensible(_) => false,
        })
    }

    /// `*0301234*`: a number of 6+ digits is matched as a call from it
    /// would be, shorter ones as digits within the stored numbers.
    fn number_substring(
        &mut self,
        attr: &str,
        sub: &LdapSubstringFilter,
        c: &StoredContact,
    ) -> Result<bool, StoreError> {
        let stored = values(c, attr);
        if stored.is_empty() {
            return Ok(false);
        }
        let parts: Vec<&str> =
            sub.initial.iter().chain(sub.any.iter()).chain(sub.final_.iter()).map(String::as_str).collect();
        let text: String = parts.concat();
        let digits: String = text.chars().filter(|ch| ch.is_ascii_digit()).collect();
        if digits.len() >= MIN_NUMBER_DIGITS && self.by_number(&text)?.contains(&c.at) {
            return Ok(true);
        }
        Ok(stored.iter().any(|raw| {
            let raw_digits: String = raw.chars().filter(|ch| ch.is_ascii_digit()).collect();
            !digits.is_empty() && raw_digits.contains(&digits)
        }))
    }
}

/// LDAP substring match on lower-cased text.
fn substring(value: &str, sub: &LdapSubstringFilter) -> bool {
    let mut rest = value;
    if let Some(i) = &sub.initial {
        match rest.strip_prefix(i.to_lowercase().as_str()) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    for any in &sub.any {
        let any = any.to_lowercase();
        match rest.find(any.as_str()) {
            Some(at) => rest = &rest[at + any.len()..],
            None => return false,
        }
    }
    match &sub.final_ {
        Some(f) => rest.ends_with(f.to_lowercase().as_str()),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_name_places_in_the_tree() {
        assert_eq!(place(""), Some(Place::Root));
        assert_eq!(place("DC=ContactBridge"), Some(Place::Suffix));
        assert_eq!(place("ou=demo, dc=contactbridge"), Some(Place::Tenant("demo".into())));
        assert_eq!(place("cn=phones,ou=demo,dc=contactbridge"), Some(Place::TenantBinder("demo".into())));
        assert_eq!(place("ou=dana,ou=demo,dc=contactbridge"), Some(Place::User("demo".into(), "dana".into())));
        assert_eq!(
            place("uid=ab,ou=dana,ou=demo,dc=contactbridge"),
            Some(Place::Contact("demo".into(), "dana".into(), "ab".into()))
        );
        for bad in ["dc=example", "ou=demo", "ou=a\\,b,dc=contactbridge", "x,dc=contactbridge", "ou=,dc=contactbridge"]
        {
            assert_eq!(place(bad), None, "{bad}");
        }
    }

    #[test]
    fn substrings_match_in_order() {
        let f = |i: Option<&str>, any: &[&str], fin: Option<&str>| LdapSubstringFilter {
            initial: i.map(str::to_string),
            any: any.iter().map(|s| s.to_string()).collect(),
            final_: fin.map(str::to_string),
        };
        assert!(substring("erika mustermann", &f(None, &["MUSTER"], None)));
        assert!(substring("erika mustermann", &f(Some("Eri"), &["must"], Some("mann"))));
        assert!(!substring("erika mustermann", &f(Some("must"), &[], None)));
        assert!(!substring("ab", &f(Some("a"), &[], Some("ab"))));
        assert!(substring("ééé", &f(None, &["É"], None)));
    }
}
