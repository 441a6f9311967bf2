//! OneDrive search (`GET /users/{id}/drive/root/search(q='…')`): the files whose
//! name, metadata or content mention a term. The term is an OData string literal:
//! single quotes are doubled, control characters dropped and the length capped, and
//! the path segment is percent-encoded, so a contact's name cannot leave the literal
//! or the segment. Only the first page is read (the best `TOP` hits).

use crate::client::GraphHttp;
use crate::map::{self, Item, DRIVE_SELECT};
use crate::GraphConnector;
use contactbridge_connector::{Document, Error, Record};
use graph_rs_sdk::http::Method;
use graph_rs_sdk::GraphClient;

/// Hits read per search.
pub const TOP: usize = 25;
/// The longest term sent.
pub const MAX_TERM: usize = 128;

/// `term` as the inside of an OData string literal.
pub fn odata_literal(term: &str) -> String {
    term.chars().filter(|c| !c.is_control()).take(MAX_TERM).collect::<String>().replace('\'', "''")
}

impl GraphConnector {
    /// The files of `mailbox`'s OneDrive that Graph's search finds for `term`.
    pub async fn search_drive(&self, mailbox: &str, term: &str) -> Result<Vec<Document>, Error> {
        let literal = odata_literal(term.trim());
        if literal.is_empty() {
            return Ok(Vec::new());
        }
        let mut url = graph_rs_sdk::http::Url::parse(self.account().graph_base.trim_end_matches('/'))
            .map_err(|e| Error::local(format!("invalid Graph base URL: {e}")))?;
        url.path_segments_mut().map_err(|_| Error::local("the Graph base URL cannot have a path"))?.extend([
            "users",
            mailbox,
            "drive",
            "root",
            &format!("search(q='{literal}')"),
        ]);
        url.query_pairs_mut().append_pair("$select", DRIVE_SELECT).append_pair("$top", &TOP.to_string());
        let what = format!("drive search of {mailbox}");
        let make = |g: &GraphClient| GraphHttp::custom(g, Method::GET, &url, None);
        let page = self.http().page(mailbox, &what, &make).await?;
        Ok(page
            .items
            .iter()
            .filter_map(|v| match map::drive_item(v) {
                Item::Upsert(Record::Document(d)) => Some(d),
                _ => None,
            })
            .take(TOP)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled_and_control_characters_dropped() {
        assert_eq!(odata_literal("O'Brien"), "O''Brien");
        assert_eq!(odata_literal("x') or (q='y"), "x'') or (q=''y");
        assert_eq!(odata_literal("a\u{0}b\nc"), "abc");
        assert_eq!(odata_literal(&"z".repeat(500)).len(), MAX_TERM);
    }
}
