//! `ssl.principal.mapping.rules`: how a client certificate's subject (its distinguished name
//! as RFC 2253 writes it, `CN=alice,OU=eng,O=corp`) becomes a principal's name, with Kafka's
//! syntax: a comma-separated list of `DEFAULT` (the name as it is) and
//! `RULE:pattern/replacement/` with an optional `L` or `U` (lower or upper case) after the
//! last slash. The first rule whose pattern matches the whole name applies; `$1` in the
//! replacement is the pattern's first group. When none applies, the client is refused.

use regex::Regex;

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        pattern: Regex,
        replacement: String,
        case: Option<char>,
    },
}

/// Parsed mapping rules.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

/// Reads up to the next unescaped `/`: the text (a `\/` becomes `/`, other escapes stay as
/// they are, for the regex) and what follows the slash.
fn until_slash(text: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => return None,
            },
            '/' => return Some((out, &text[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

impl PrincipalMapper {
    pub fn parse(rules: &str) -> Result<PrincipalMapper, String> {
        let mut parsed = Vec::new();
        let mut rest = rules.trim();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                parsed.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) =
                    until_slash(after).ok_or("a RULE needs pattern/replacement/")?;
                let (replacement, after) =
                    until_slash(after).ok_or("a RULE needs pattern/replacement/")?;
                let (case, after) = match after.chars().next() {
                    Some(c @ ('L' | 'U')) => (Some(c), &after[1..]),
                    _ => (None, after),
                };
                let pattern = Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| format!("invalid pattern in a RULE: {e}"))?;
                parsed.push(Rule::Replace {
                    pattern,
                    replacement,
                    case,
                });
                rest = after;
            } else {
                return Err(format!("invalid rule: {rest}"));
            }
            rest = rest.trim_start();
            match rest.strip_prefix(',') {
                Some(after) => rest = after.trim_start(),
                None if rest.is_empty() => {}
                None => return Err(format!("expected a comma before {rest}")),
            }
        }
        if parsed.is_empty() {
            return Err("no rule".into());
        }
        Ok(PrincipalMapper { rules: parsed })
    }

    /// The principal name of a distinguished name; None when no rule applies.
    pub fn map(&self, dn: &str) -> Option<String> {
        self.rules.iter().find_map(|rule| match rule {
            Rule::Default => Some(dn.to_string()),
            Rule::Replace {
                pattern,
                replacement,
                case,
            } => {
                if !pattern.is_match(dn) {
                    return None;
                }
                let name = pattern.replace(dn, replacement.as_str()).into_owned();
                Some(match case {
                    Some('L') => name.to_lowercase(),
                    Some('U') => name.to_uppercase(),
                    _ => name,
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_rule_syntax() {
        let m = PrincipalMapper::parse(
            r"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/, RULE:^CN=(.*?),OU=(.*?),O=(.*?)$/$1@$2/L, RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U, DEFAULT",
        )
        .unwrap();
        assert_eq!(
            m.map("CN=kafka-svc,OU=ServiceUsers,O=corp").as_deref(),
            Some("kafka-svc")
        );
        assert_eq!(
            m.map("CN=Alice,OU=Eng,O=corp").as_deref(),
            Some("alice@eng")
        );
        assert_eq!(m.map("O=corp,CN=bob.smith").as_deref(), Some("BOB.SMITH"));
        assert_eq!(m.map("O=corp").as_deref(), Some("O=corp"));
        let strict = PrincipalMapper::parse(r"RULE:^CN=([^,]*),O=corp$/$1/").unwrap();
        assert_eq!(strict.map("CN=alice,O=corp").as_deref(), Some("alice"));
        assert_eq!(strict.map("CN=alice,O=other"), None);
        let slashes = PrincipalMapper::parse(r"RULE:^CN=a\/b$/a-b/").unwrap();
        assert_eq!(slashes.map("CN=a/b").as_deref(), Some("a-b"));
        for bad in [
            "",
            "RULE:x",
            "RULE:x/y",
            "NOPE",
            "DEFAULT DEFAULT",
            "RULE:(/x/",
        ] {
            assert!(PrincipalMapper::parse(bad).is_err(), "{bad}");
        }
    }
}
