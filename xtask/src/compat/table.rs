//! Comparing a suite's results bare and under a host, and the table that shows it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Why a test cannot be expected to pass under a host, by design. Known from the bare run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// Starts a process (fork, spawn, an external program).
    Process,
    /// Opens an internet socket.
    Network,
    /// node only: the test file asks for node flags (`// Flags:`), which a host does not pass.
    NodeFlags,
}

impl Need {
    pub fn label(self) -> &'static str {
        match self {
            Need::Process => "needs a process",
            Need::Network => "needs the network",
            Need::NodeFlags => "needs node flags",
        }
    }
}

/// One test (CPython) or one test file (bash, node, Lua), as one side ran it.
#[derive(Clone, Debug, Default)]
pub struct Item {
    pub passed: bool,
    /// What the bare run saw it need (empty under a host).
    pub needs: Vec<Need>,
    /// Refused calls the host reported while this item ran (or that ended the host before it).
    pub refused: Vec<String>,
    /// The host ended before this item could run (its results are missing).
    pub never_ran: bool,
    /// A short reason when it did not pass (first error line, how the process ended).
    pub detail: String,
    /// A normalised reason (an error class, a missing module) that groups failures of the
    /// "other" cause; empty when nothing better than "other" is known.
    pub hint: String,
}

/// The items of one side, by id.
pub type Results = BTreeMap<String, Item>;

/// A suite compared bare and under one host.
pub struct Comparison {
    pub title: String,
    pub host: String,
    /// "tests" or "test files".
    pub unit: &'static str,
    pub bare_command: String,
    pub host_command: String,
    pub bare: Results,
    pub hosted: Results,
    /// Free lines printed under the table (what was skipped and why, versions).
    pub notes: Vec<String>,
}

/// The cause of one difference (passed bare, not under the host).
fn cause(bare: &Item, hosted: Option<&Item>) -> String {
    if let Some(need) = bare.needs.first() {
        return format!("{} (excepted)", need.label());
    }
    match hosted {
        None => "not run under the host (no result)".to_string(),
        Some(item) => match item.refused.first() {
            Some(name) if item.never_ran => format!("refused {name} (host ended before it ran)"),
            Some(name) => format!("refused {name}"),
            None if item.never_ran => format!("never ran: {}", item.detail),
            None if item.hint.is_empty() => "other".to_string(),
            None => format!("other: {}", clip(&item.hint, 60)),
        },
    }
}

fn percent(part: usize, whole: usize) -> String {
    if whole == 0 {
        "n/a".to_string()
    } else {
        format!("{:.1}%", 100.0 * part as f64 / whole as f64)
    }
}

impl Comparison {
    /// (bare passed, host passed) among the items that pass bare and need nothing excepted.
    pub fn kept(&self) -> (usize, usize) {
        let base: Vec<&String> =
            self.bare.iter().filter(|(_, item)| item.passed && item.needs.is_empty()).map(|(id, _)| id).collect();
        let kept = base.iter().filter(|id| self.hosted.get(**id).is_some_and(|item| item.passed)).count();
        (base.len(), kept)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let host = &self.host;
        let passed = |results: &Results| results.values().filter(|item| item.passed).count();
        let ran = |results: &Results| results.values().filter(|item| !item.never_ran).count();
        let _ = writeln!(out, "### {} — {host}\n", self.title);
        let _ = writeln!(out, "- bare: `{}`", self.bare_command);
        let _ = writeln!(out, "- {host}: `{}`\n", self.host_command);
        let _ = writeln!(out, "| {} | bare | {host} |", self.unit);
        let _ = writeln!(out, "|---|---:|---:|");
        let _ = writeln!(out, "| ran | {} | {} |", ran(&self.bare), ran(&self.hosted));
        let _ = writeln!(out, "| passed | {} | {} |", passed(&self.bare), passed(&self.hosted));
        for need in [Need::Process, Need::Network, Need::NodeFlags] {
            let ids: Vec<&String> = self
                .bare
                .iter()
                .filter(|(_, item)| item.passed && item.needs.first() == Some(&need))
                .map(|(id, _)| id)
                .collect();
            if ids.is_empty() {
                continue;
            }
            let kept = ids.iter().filter(|id| self.hosted.get(**id).is_some_and(|item| item.passed)).count();
            let _ = writeln!(out, "| excepted, {}: passed | {} | {kept} |", need.label(), ids.len());
        }
        let (base, kept) = self.kept();
        let _ =
            writeln!(out, "| **passed, excepted ones left out** | **{base}** | **{kept} ({})** |", percent(kept, base));
        out.push('\n');

        let mut causes: BTreeMap<String, Vec<(&String, &str)>> = BTreeMap::new();
        for (id, item) in self.bare.iter().filter(|(_, item)| item.passed) {
            let hosted = self.hosted.get(id);
            if hosted.is_some_and(|item| item.passed) {
                continue;
            }
            let cause = cause(item, hosted);
            // What explains the example: the host's error for "other", what the bare run needed
            // (bash: the programs it ran) for an excepted one.
            let detail = if cause.ends_with("(excepted)") {
                item.detail.as_str()
            } else {
                hosted.map(|item| item.detail.as_str()).unwrap_or("")
            };
            causes.entry(cause).or_default().push((id, detail));
        }
        if causes.is_empty() {
            let _ = writeln!(out, "Every {} that passes bare passes under {host}.", self.unit.trim_end_matches('s'));
        } else {
            let mut rows: Vec<(&String, &Vec<(&String, &str)>)> = causes.iter().collect();
            rows.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
            let _ = writeln!(out, "| passed bare, not under {host}: cause | {} | examples |", self.unit);
            let _ = writeln!(out, "|---|---:|---|");
            for (cause, items) in rows {
                let examples: Vec<String> = items
                    .iter()
                    .take(2)
                    .map(|(id, detail)| (id.strip_prefix("test.").unwrap_or(id), detail))
                    .map(|(id, detail)| {
                        if (cause.starts_with("other") || cause.ends_with("(excepted)")) && !detail.is_empty() {
                            format!("`{id}` ({})", clip(detail, 90))
                        } else {
                            format!("`{id}`")
                        }
                    })
                    .collect();
                let _ = writeln!(out, "| {cause} | {} | {} |", items.len(), examples.join(", ").replace('|', "\\|"));
            }
        }
        let gained: Vec<&String> = self
            .hosted
            .iter()
            .filter(|(id, item)| item.passed && !self.bare.get(*id).is_some_and(|bare| bare.passed))
            .map(|(id, _)| id)
            .collect();
        if !gained.is_empty() {
            let examples: Vec<String> = gained.iter().take(3).map(|id| format!("`{id}`")).collect();
            let _ = writeln!(out, "\nPassed under {host} but not bare: {} ({}).", gained.len(), examples.join(", "));
        }
        for note in &self.notes {
            let _ = writeln!(out, "\n{note}");
        }
        out
    }

    /// Every item, one line each, tab-separated: id, bare, host, cause/detail (for digging).
    pub fn details(&self) -> String {
        let mut out = String::from("id\tbare\thost\tneeds\trefused\tbare detail\thost detail\n");
        let outcome = |item: Option<&Item>| match item {
            Some(item) if item.passed => "pass",
            Some(item) if item.never_ran => "not-run",
            Some(_) => "fail",
            None => "absent",
        };
        let mut ids: Vec<&String> = self.bare.keys().chain(self.hosted.keys()).collect();
        ids.sort();
        ids.dedup();
        for id in ids {
            let bare = self.bare.get(id);
            let hosted = self.hosted.get(id);
            let needs: Vec<&str> =
                bare.map(|item| item.needs.iter().map(|need| need.label()).collect()).unwrap_or_default();
            let refused = hosted.map(|item| item.refused.join(",")).unwrap_or_default();
            let detail = |item: Option<&Item>| item.map(|item| clip(&item.detail, 200)).unwrap_or_default();
            let _ = writeln!(
                out,
                "{id}\t{}\t{}\t{}\t{refused}\t{}\t{}",
                outcome(bare),
                outcome(hosted),
                needs.join(","),
                detail(bare),
                detail(hosted)
            );
        }
        out
    }
}

/// The errno an error message shows, named for what it means under a host: `EACCES` is
/// landlock's answer, `EPERM` seccomp's refusal, `ENOSYS` a call answered as missing.
pub fn errno_hint(text: &str) -> Option<&'static str> {
    let has = |needle: &str| text.contains(needle);
    if has("[Errno 13]") || has("EACCES") || has("Permission denied") {
        Some("EACCES (landlock)")
    } else if has("[Errno 1]") || has("EPERM") || has("Operation not permitted") {
        Some("EPERM")
    } else if has("[Errno 38]") || has("ENOSYS") || has("Function not implemented") {
        Some("ENOSYS")
    } else {
        None
    }
}

/// At most `width` characters of one line.
pub fn clip(text: &str, width: usize) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() <= width {
        line.to_string()
    } else {
        format!("{}…", line.chars().take(width).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(passed: bool) -> Item {
        Item { passed, ..Item::default() }
    }

    #[test]
    fn differences_are_grouped_by_cause_and_exceptions_left_out() {
        let mut bare = Results::new();
        let mut hosted = Results::new();
        for id in ["a", "b", "c", "d", "e"] {
            bare.insert(id.to_string(), item(true));
        }
        bare.get_mut("e").unwrap().needs.push(Need::Process);
        hosted.insert("a".to_string(), item(true));
        hosted.insert("b".to_string(), Item { refused: vec!["chmod".to_string()], ..item(false) });
        hosted.insert("c".to_string(), Item { refused: vec!["chmod".to_string()], never_ran: true, ..item(false) });
        hosted.insert("d".to_string(), Item { detail: "AssertionError".to_string(), ..item(false) });
        hosted.insert("e".to_string(), item(false));
        let comparison = Comparison {
            title: "t".to_string(),
            host: "hx".to_string(),
            unit: "tests",
            bare_command: String::new(),
            host_command: String::new(),
            bare,
            hosted,
            notes: Vec::new(),
        };
        assert_eq!(comparison.kept(), (4, 1));
        let text = comparison.render();
        assert!(text.contains("| refused chmod | 1 |"), "{text}");
        assert!(text.contains("| refused chmod (host ended before it ran) | 1 |"), "{text}");
        assert!(text.contains("| other | 1 | `d` (AssertionError) |"), "{text}");
        assert!(text.contains("| needs a process (excepted) | 1 |"), "{text}");
        assert!(text.contains("**4** | **1 (25.0%)**"), "{text}");
    }
}
