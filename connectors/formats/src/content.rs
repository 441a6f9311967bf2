//! Content lines → properties (parsed by `ical`) → a tree of components
//! (`BEGIN:`/`END:`), built here so that one broken item does not sink the others.

use crate::prepass::{self, Dialect};
use ical::property::PropertyParser;
use ical::LineReader;

/// One property: `group.NAME;PARAM=v1,v2:value`. Names and parameter keys are upper-case.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Prop {
    pub group: Option<String>,
    pub name: String,
    pub params: Vec<(String, Vec<String>)>,
    pub value: String,
}

impl Prop {
    /// All values of parameter `key` (comma lists split, trimmed).
    pub fn param_values(&self, key: &str) -> impl Iterator<Item = &str> + '_ {
        let key = key.to_string();
        self.params
            .iter()
            .filter(move |(k, _)| *k == key)
            .flat_map(|(_, vs)| vs.iter())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    /// The first value of parameter `key`, as written (no comma split).
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == key).and_then(|(_, vs)| vs.first()).map(String::as_str)
    }

    pub fn param_is(&self, key: &str, value: &str) -> bool {
        self.param_values(key).any(|v| v.eq_ignore_ascii_case(value))
    }
}

/// A component (`VCARD`, `VCALENDAR`, `VEVENT`, ...) with its properties and children.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Component {
    pub name: String,
    pub props: Vec<Prop>,
    pub children: Vec<Component>,
    /// False when the input ended (or another item began) before its `END:`.
    pub complete: bool,
}

impl Component {
    pub fn props<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Prop> + 'a {
        self.props.iter().filter(move |p| p.name == *name)
    }

    pub fn prop(&self, name: &str) -> Option<&Prop> {
        self.props.iter().find(|p| p.name == name)
    }
}

/// Parses text into its top-level components.
pub(crate) fn parse(bytes: &[u8], dialect: Dialect) -> Vec<Component> {
    let lines = prepass::logical_lines(bytes, dialect);
    build_tree(parse_props(&lines), dialect)
}

/// Runs `ical`'s property parser over the logical lines. Lines it rejects
/// (no name, unbalanced quotes) are skipped: one bad line must not cost the item.
fn parse_props(lines: &[String]) -> Vec<Prop> {
    let mut text = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    let parser = PropertyParser::new(LineReader::new(text.as_bytes()));
    let mut props = Vec::with_capacity(lines.len());
    for result in parser {
        match result {
            Ok(p) => {
                let (group, name) = match p.name.split_once('.') {
                    Some((g, n)) => (Some(g.trim().to_string()), n),
                    None => (None, p.name.as_str()),
                };
                props.push(Prop {
                    group,
                    name: name.trim().to_ascii_uppercase(),
                    params: p.params.unwrap_or_default(),
                    value: p.value.unwrap_or_default(),
                });
            }
            Err(e) => tracing::debug!("skipping unparsable content line: {e}"),
        }
    }
    props
}

/// Deeper nesting is not real data: `BEGIN`/`END` lines beyond it are ignored.
const MAX_DEPTH: usize = 8;

/// Components that cannot contain another of the listed kinds: a `BEGIN` of one
/// of these while one is open means the open one lost its `END`.
fn is_item(name: &str) -> bool {
    matches!(name, "VCARD" | "VEVENT" | "VTODO" | "VJOURNAL" | "VFREEBUSY" | "VTIMEZONE")
}

fn build_tree(props: Vec<Prop>, dialect: Dialect) -> Vec<Component> {
    let mut roots: Vec<Component> = Vec::new();
    let mut stack: Vec<Component> = Vec::new();
    let mut nested_agent = false;

    fn close(stack: &mut Vec<Component>, roots: &mut Vec<Component>, complete: bool) {
        if let Some(mut c) = stack.pop() {
            c.complete = complete;
            match stack.last_mut() {
                Some(parent) => parent.children.push(c),
                None => roots.push(c),
            }
        }
    }

    for prop in props {
        match prop.name.as_str() {
            "BEGIN" if stack.len() >= MAX_DEPTH => tracing::debug!("ignoring BEGIN nested too deeply"),
            "BEGIN" => {
                let name = prop.value.trim().to_ascii_uppercase();
                if is_item(&name) {
                    let agent = dialect == Dialect::VCard && name == "VCARD" && nested_agent;
                    if !agent {
                        // Close every open item (and what is inside it): it lost its END.
                        while let Some(pos) = stack.iter().rposition(|c| is_item(&c.name)) {
                            while stack.len() > pos {
                                close(&mut stack, &mut roots, false);
                            }
                        }
                    }
                }
                stack.push(Component { name, ..Default::default() });
            }
            "END" => {
                let name = prop.value.trim().to_ascii_uppercase();
                if let Some(pos) = stack.iter().rposition(|c| c.name == name) {
                    while stack.len() > pos + 1 {
                        close(&mut stack, &mut roots, false);
                    }
                    close(&mut stack, &mut roots, true);
                } else {
                    tracing::debug!("ignoring END:{name} without BEGIN");
                }
            }
            _ => match stack.last_mut() {
                Some(top) => {
                    nested_agent = prop.name == "AGENT" && prop.value.trim().is_empty();
                    top.props.push(prop);
                    continue;
                }
                None => tracing::debug!("ignoring {} outside any component", prop.name),
            },
        }
        nested_agent = false;
    }
    while !stack.is_empty() {
        close(&mut stack, &mut roots, false);
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_params_and_values_are_split() {
        let roots =
            parse(b"BEGIN:VCARD\r\nitem1.TEL;type=CELL;TYPE=\"work,voice\":+1\r\nEND:VCARD\r\n", Dialect::VCard);
        let tel = roots[0].prop("TEL").unwrap();
        assert_eq!(tel.group.as_deref(), Some("item1"));
        assert_eq!(tel.param_values("TYPE").collect::<Vec<_>>(), vec!["CELL", "work", "voice"]);
        assert_eq!(tel.value, "+1");
        assert!(roots[0].complete);
    }

    #[test]
    fn missing_end_closes_the_item_at_the_next_begin() {
        let roots = parse(b"BEGIN:VCARD\nFN:a\nBEGIN:VCARD\nFN:b\nEND:VCARD\nBEGIN:vcard\nFN:c\n", Dialect::VCard);
        let state: Vec<(bool, &str)> =
            roots.iter().map(|c| (c.complete, c.prop("FN").unwrap().value.as_str())).collect();
        assert_eq!(state, vec![(false, "a"), (true, "b"), (false, "c")]);
    }

    #[test]
    fn agent_cards_nest() {
        let roots =
            parse(b"BEGIN:VCARD\nFN:a\nAGENT:\nBEGIN:VCARD\nFN:b\nEND:VCARD\nTEL:1\nEND:VCARD\n", Dialect::VCard);
        assert_eq!(roots.len(), 1);
        assert!(roots[0].complete);
        assert_eq!(roots[0].children.len(), 1);
        assert_eq!(roots[0].prop("TEL").unwrap().value, "1");
    }

    #[test]
    fn deep_nesting_is_cut() {
        let text = format!("BEGIN:VCARD\nFN:a\n{}END:VCARD\n", "BEGIN:X\n".repeat(100_000));
        let roots = parse(text.as_bytes(), Dialect::VCard);
        assert_eq!(roots.len(), 1);
        assert_eq!(roots[0].prop("FN").unwrap().value, "a");
    }

    #[test]
    fn calendars_nest_events_and_alarms() {
        let text = b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:1\nBEGIN:VALARM\nATTENDEE:mailto:x\nEND:VALARM\nEND:VEVENT\nEND:VCALENDAR\n";
        let roots = parse(text, Dialect::ICalendar);
        let event = &roots[0].children[0];
        assert_eq!(event.name, "VEVENT");
        assert!(event.prop("ATTENDEE").is_none());
        assert_eq!(event.children[0].prop("ATTENDEE").unwrap().value, "mailto:x");
    }
}
