//! Package versions ordered as Maven's `ComparableVersion` orders them:
//! numeric segments compared as numbers (`1.10` after `1.9`), qualifiers
//! `alpha` < `beta` < `milestone` < `rc` (= `cr`) < `snapshot` < release
//! (`ga`, `final`, `release`, nothing) < `sp` < any other word, a
//! pre-release before its release (`1.0-rc1` < `1.0`), and trailing zeros
//! and release qualifiers ignored (`1` = `1.0.0` = `1-ga`).

use std::cmp::Ordering;

/// One parsed part of a version.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    /// Digits, leading zeros removed (compared as a number of any size).
    Int(String),
    /// A qualifier, lowercased, aliases resolved (`cr` → `rc`, `ga` → ``).
    Str(String),
    /// What follows a `-`, or a switch between digits and letters.
    List(Vec<Item>),
}

/// Known qualifiers in order; the empty one is a release.
const QUALIFIERS: [&str; 7] = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];
/// Where a release stands among [`QUALIFIERS`].
const RELEASE: usize = 5;

/// Compares two versions as Maven does.
pub fn compare(a: &str, b: &str) -> Ordering {
    Item::List(parse(a)).compare(Some(&Item::List(parse(b))))
}

/// The qualifiers (words) of a version, lowercased, Maven's aliases
/// resolved (`cr` → `rc`, `a1` → `alpha`, …) and release words (`ga`,
/// `final`, `release`) dropped.
pub fn qualifiers(version: &str) -> Vec<String> {
    fn collect(items: &[Item], out: &mut Vec<String>) {
        for item in items {
            match item {
                Item::Str(text) if !text.is_empty() => out.push(text.clone()),
                Item::List(inner) => collect(inner, out),
                Item::Str(_) | Item::Int(_) => {}
            }
        }
    }
    let mut out = Vec::new();
    collect(&parse(version), &mut out);
    out
}

/// Whether a qualifier's rank, or `None` for one Maven does not know (those
/// sort after all known ones, among themselves as text).
fn rank(qualifier: &str) -> Option<usize> {
    QUALIFIERS.iter().position(|q| *q == qualifier)
}

fn compare_qualifiers(a: &str, b: &str) -> Ordering {
    match (rank(a), rank(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

fn int_item(digits: &str) -> Item {
    let trimmed = digits.trim_start_matches('0');
    Item::Int(trimmed.to_owned())
}

fn string_item(text: &str, followed_by_digit: bool) -> Item {
    let text = match text {
        "a" if followed_by_digit => "alpha",
        "b" if followed_by_digit => "beta",
        "m" if followed_by_digit => "milestone",
        "ga" | "final" | "release" => "",
        "cr" => "rc",
        other => other,
    };
    Item::Str(text.to_owned())
}

impl Item {
    /// Whether the item is the same as nothing (`0`, a release, `-`).
    fn is_null(&self) -> bool {
        match self {
            Item::Int(digits) => digits.is_empty(),
            Item::Str(text) => rank(text) == Some(RELEASE),
            Item::List(items) => items.is_empty(),
        }
    }

    /// Compares with `other`, where `None` is a missing item (the shorter
    /// version's end).
    fn compare(&self, other: Option<&Item>) -> Ordering {
        match (self, other) {
            (Item::Int(digits), None) => {
                if digits.is_empty() {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                }
            }
            (Item::Str(text), None) => compare_qualifiers(text, ""),
            (Item::List(items), None) => items
                .first()
                .map_or(Ordering::Equal, |first| first.compare(None)),
            (Item::Int(a), Some(Item::Int(b))) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
            (Item::Int(_), Some(_)) => Ordering::Greater,
            (Item::Str(_), Some(Item::Int(_))) => Ordering::Less,
            (Item::Str(a), Some(Item::Str(b))) => compare_qualifiers(a, b),
            (Item::Str(_), Some(Item::List(_))) => Ordering::Less,
            (Item::List(_), Some(Item::Int(_))) => Ordering::Less,
            (Item::List(_), Some(Item::Str(_))) => Ordering::Greater,
            (Item::List(a), Some(Item::List(b))) => {
                for i in 0..a.len().max(b.len()) {
                    let order = match (a.get(i), b.get(i)) {
                        (Some(left), right) => left.compare(right),
                        (None, Some(right)) => right.compare(None).reverse(),
                        (None, None) => Ordering::Equal,
                    };
                    if order != Ordering::Equal {
                        return order;
                    }
                }
                Ordering::Equal
            }
        }
    }
}

/// Removes trailing null items, up to the last one that is not a list.
fn normalize(items: &mut Vec<Item>) {
    while let Some(last) = items.last() {
        if last.is_null() {
            items.pop();
        } else if matches!(last, Item::List(_)) {
            // Maven goes on past a non-null list to the items before it.
            let keep = items.pop();
            normalize(items);
            items.extend(keep);
            return;
        } else {
            return;
        }
    }
}

/// Parses a version into nested lists as Maven's `parseVersion` does:
/// `.` separates items, `-` and a switch between digits and letters open a
/// sublist.
fn parse(version: &str) -> Vec<Item> {
    let version = version.to_lowercase();
    let chars: Vec<char> = version.chars().collect();
    // The open lists, innermost last; each is appended to its parent when
    // the parse ends, after normalization.
    let mut stack: Vec<Vec<Item>> = vec![Vec::new()];
    let mut is_digit = false;
    let mut start = 0;
    let text = |from: usize, to: usize| chars[from..to].iter().collect::<String>();
    let top = |stack: &mut Vec<Vec<Item>>| stack.len() - 1;
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '.' | '-' => {
                let item = if i == start {
                    Item::Int(String::new())
                } else if is_digit {
                    int_item(&text(start, i))
                } else {
                    string_item(&text(start, i), false)
                };
                let t = top(&mut stack);
                stack[t].push(item);
                start = i + 1;
                if c == '-' {
                    stack.push(Vec::new());
                }
            }
            c if c.is_ascii_digit() => {
                if !is_digit && i > start {
                    let t = top(&mut stack);
                    stack[t].push(string_item(&text(start, i), true));
                    start = i;
                    stack.push(Vec::new());
                }
                is_digit = true;
            }
            _ => {
                if is_digit && i > start {
                    let t = top(&mut stack);
                    stack[t].push(int_item(&text(start, i)));
                    start = i;
                    stack.push(Vec::new());
                }
                is_digit = false;
            }
        }
    }
    if chars.len() > start {
        let item = if is_digit {
            int_item(&text(start, chars.len()))
        } else {
            string_item(&text(start, chars.len()), false)
        };
        let t = top(&mut stack);
        stack[t].push(item);
    }
    // Close the sublists innermost first, each normalized, into its parent.
    while stack.len() > 1 {
        let mut list = stack.pop().unwrap_or_default();
        normalize(&mut list);
        let t = top(&mut stack);
        stack[t].push(Item::List(list));
    }
    let mut root = stack.pop().unwrap_or_default();
    normalize(&mut root);
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each version is older than the next (Maven's own test list, in part).
    #[test]
    fn orders_as_maven_does() {
        let ordered = [
            "1-alpha2snapshot",
            "1-alpha2",
            "1-alpha-123",
            "1-beta-2",
            "1-beta123",
            "1-m2",
            "1-m11",
            "1-rc",
            "1-cr2",
            "1-rc123",
            "1-SNAPSHOT",
            "1",
            "1-sp",
            "1-sp2",
            "1-sp123",
            "1-abc",
            "1-def",
            "1-pom-1",
            "1-1-snapshot",
            "1-1",
            "1-2",
            "1-123",
            "2.0",
            "2-1",
            "2.0.a",
            "2.0.0.a",
            "2.0.2",
            "2.0.123",
            "2.1.0",
            "2.1-a",
            "2.1b",
            "2.1-c",
            "2.1-1",
            "2.1.0.1",
            "2.2",
            "2.123",
            "11.a2",
            "11.a11",
            "11.b2",
            "11.b11",
            "11.m2",
            "11.m11",
            "11",
            "11.a",
            "11b",
            "11c",
            "11m",
        ];
        for pair in ordered.windows(2) {
            assert_eq!(
                compare(pair[0], pair[1]),
                Ordering::Less,
                "{} < {}",
                pair[0],
                pair[1]
            );
            assert_eq!(
                compare(pair[1], pair[0]),
                Ordering::Greater,
                "{} > {}",
                pair[1],
                pair[0]
            );
        }
    }

    #[test]
    fn common_cases() {
        use Ordering::*;
        let cases = [
            ("1.9", "1.10", Less),
            ("1.10", "1.9", Greater),
            ("2.1.1", "2.1.1", Equal),
            ("1.0-rc1", "1.0", Less),
            ("1.0-beta", "1.0-rc1", Less),
            ("1.0-alpha", "1.0-beta", Less),
            ("1.0-SNAPSHOT", "1.0", Less),
            ("1.0-rc1", "1.0-rc2", Less),
            ("1.0-rc9", "1.0-rc10", Less),
            ("7.0.15", "7.0.15-1", Less),
            ("1.0.0", "1", Equal),
            ("1-ga", "1", Equal),
            ("1.0-final", "1", Equal),
            ("1.0-CR1", "1.0-rc1", Equal),
            ("1.0.1", "1.0-sp", Greater),
            ("0.9", "1.0-alpha", Less),
            ("99999999999999999999", "100000000000000000000", Less),
            ("1.007", "1.7", Equal),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
        }
    }

    /// Versions Maven counts as equal.
    #[test]
    fn equal_spellings() {
        let groups: [&[&str]; 3] = [
            &[
                "1",
                "1.0",
                "1.0.0",
                "1-0",
                "1.0-0",
                "1-ga",
                "1.ga",
                "1-final",
                "1-release",
            ],
            &["1a1", "1-a1", "1alpha1", "1-alpha-1"],
            &["1cr", "1rc", "1-cr", "1-rc"],
        ];
        for group in groups {
            for a in group {
                for b in group {
                    assert_eq!(compare(a, b), Ordering::Equal, "{a} = {b}");
                }
            }
        }
    }
}
