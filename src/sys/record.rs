//! Wheel `RECORD` files (PEP 376, PEP 427): one CSV line per installed
//! file with its `sha256=<urlsafe base64>` digest and size. Read and
//! written here only: the installer writes them, `verify` and the tree hash
//! read them, and a wheel's own RECORD is checked against its members.

/// One RECORD line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordEntry {
    pub path: String,
    /// URL-safe base64 sha256, when RECORD gives one.
    pub sha256: Option<String>,
    pub size: Option<u64>,
}

/// Parse a RECORD file (CSV: path, `sha256=<urlsafe b64>`, size).
pub fn parse_record(text: &str) -> Vec<RecordEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let fields = csv_fields(l);
            let get = |i: usize| fields.get(i).map(String::as_str).unwrap_or("");
            RecordEntry {
                path: get(0).to_string(),
                sha256: get(1).strip_prefix("sha256=").map(str::to_string),
                size: get(2).parse().ok(),
            }
        })
        .collect()
}

/// The fields of one CSV line (double quotes, `""` inside them).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                if let Some(f) = fields.last_mut() {
                    f.push('"');
                }
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => {
                if let Some(f) = fields.last_mut() {
                    f.push(c);
                }
            }
        }
    }
    fields
}

/// Check every dist-info's RECORD under the generation; returns (files, bytes).
/// One line of `RECORD`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RecordRow {
    /// Relative to `site-packages`, `/`-separated (`../../../bin/x` outside it).
    pub path: String,
    /// `sha256=<urlsafe base64>`, empty for `RECORD` itself.
    pub hash: String,
    pub size: Option<u64>,
}

/// The text of a RECORD: `rows` sorted by path (each path once), then the
/// RECORD's own line (`own`, with neither hash nor size).
pub fn render(mut rows: Vec<RecordRow>, own: &str) -> String {
    rows.retain(|r| r.path != own);
    rows.sort();
    rows.dedup_by(|a, b| a.path == b.path);
    let mut text = String::new();
    for r in &rows {
        text.push_str(&csv_field(&r.path));
        text.push(',');
        text.push_str(&r.hash);
        text.push(',');
        if let Some(s) = r.size {
            text.push_str(&s.to_string());
        }
        text.push('\n');
    }
    text.push_str(&csv_field(own));
    text.push_str(",,\n");
    text
}

/// A RECORD hash field: `sha256=` and the digest in URL-safe base64.
pub fn record_hash(digest: &[u8]) -> String {
    format!("sha256={}", crate::sys::codec::base64(digest, true))
}

/// One CSV field, quoted when it must be.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lines_parse_with_quotes() {
        let r = parse_record("six.py,sha256=abc,123\n\"a,b.py\",sha256=d_-,4\nsix-1.0.dist-info/RECORD,,\n../../../bin/x,sha256=e,5\n");
        assert_eq!(
            r[0],
            RecordEntry {
                path: "six.py".into(),
                sha256: Some("abc".into()),
                size: Some(123)
            }
        );
        assert_eq!(r[1].path, "a,b.py");
        assert_eq!(r[2].sha256, None);
        assert_eq!(r[3].path, "../../../bin/x");
    }

    #[test]
    fn a_rendered_record_parses_back() {
        let rows = vec![
            RecordRow {
                path: "b,c.py".into(),
                hash: record_hash(b"0123456789abcdef0123456789abcdef"),
                size: Some(3),
            },
            RecordRow {
                path: "a.py".into(),
                hash: record_hash(b"0123456789abcdef0123456789abcdef"),
                size: Some(1),
            },
        ];
        let text = render(rows, "x-1.dist-info/RECORD");
        let back = parse_record(&text);
        let paths: Vec<&str> = back.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a.py", "b,c.py", "x-1.dist-info/RECORD"]);
        assert_eq!(back[1].size, Some(3));
        assert_eq!(back[2].sha256, None);
    }
}
