//! A project's page of a package index's simple API: PEP 691 JSON when the
//! index offers it, else PEP 503 HTML. What comes out is the same list of
//! files, each with its absolute URL, its sha256 (from the JSON `hashes` or
//! the HTML link's `#sha256=` fragment), its size when the JSON gives one,
//! and whether a PEP 658 `.metadata` file sits beside it.

use serde::Deserialize;

/// What `Accept` asks for: JSON first, HTML as the fallback (PEP 691).
pub const ACCEPT: &str =
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";

/// One file of a project, as its index page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFile {
    pub filename: String,
    pub url: String,
    pub sha256: Option<String>,
    pub size: Option<u64>,
    /// PEP 658/714: `URL.metadata` holds the file's core metadata.
    pub metadata: bool,
}

#[derive(Deserialize)]
struct JsonPage {
    files: Vec<JsonFile>,
}

#[derive(Deserialize)]
struct JsonFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: std::collections::BTreeMap<String, String>,
    size: Option<u64>,
    #[serde(default, rename = "core-metadata")]
    core_metadata: Option<serde_json::Value>,
    #[serde(default, rename = "dist-info-metadata")]
    dist_info_metadata: Option<serde_json::Value>,
}

/// The files of a project page at `page_url`, from its body and content type.
pub fn parse(page_url: &str, content_type: &str, body: &str) -> Result<Vec<IndexFile>, String> {
    if content_type.contains("json") {
        let page: JsonPage =
            serde_json::from_str(body).map_err(|e| format!("not a PEP 691 page: {e}"))?;
        return Ok(page
            .files
            .into_iter()
            .map(|f| {
                let present = |v: &Option<serde_json::Value>| {
                    v.as_ref()
                        .is_some_and(|v| !matches!(v, serde_json::Value::Bool(false)))
                };
                IndexFile {
                    metadata: present(&f.core_metadata) || present(&f.dist_info_metadata),
                    url: join(page_url, &f.url),
                    sha256: f.hashes.get("sha256").map(|h| h.to_ascii_lowercase()),
                    size: f.size,
                    filename: f.filename,
                }
            })
            .collect());
    }
    Ok(anchors(body)
        .into_iter()
        .filter_map(|(href, attrs, text)| {
            let (url, fragment) = href.split_once('#').unwrap_or((&href, ""));
            let sha256 = fragment
                .strip_prefix("sha256=")
                .map(|h| h.to_ascii_lowercase());
            let url = join(page_url, url);
            let from_url = url.rsplit('/').next().unwrap_or("").to_string();
            let filename = if text.trim().is_empty() {
                from_url
            } else {
                text.trim().to_string()
            };
            (!filename.is_empty()).then(|| IndexFile {
                metadata: attrs.contains("data-core-metadata")
                    || attrs.contains("data-dist-info-metadata"),
                filename,
                url,
                sha256,
                size: None,
            })
        })
        .collect())
}

/// `<a href="...">text</a>`: (href, the tag's attributes, text), with
/// the HTML entities an index writes decoded.
fn anchors(body: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let lower = body.to_ascii_lowercase();
    let mut at = 0;
    while let Some(start) = lower[at..].find("<a ").map(|i| i + at) {
        let Some(end) = lower[start..].find('>').map(|i| i + start) else {
            break;
        };
        let attrs = &body[start + 3..end];
        let close = lower[end..].find("</a>").map_or(body.len(), |i| i + end);
        let text = &body[end + 1..close];
        at = close.min(body.len());
        if let Some(href) = attr(attrs, "href") {
            out.push((unescape(&href), attrs.to_ascii_lowercase(), unescape(text)));
        }
        if at <= start {
            break;
        }
    }
    out
}

fn attr(attrs: &str, name: &str) -> Option<String> {
    let lower = attrs.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name).map(|i| i + from) {
        let before_ok = i == 0 || lower.as_bytes()[i - 1].is_ascii_whitespace();
        let rest = lower[i + name.len()..].trim_start();
        if before_ok && rest.starts_with('=') {
            let offset = attrs.len() - rest.len() + 1;
            let value = attrs[offset..].trim_start();
            let quote = value.chars().next()?;
            return Some(if quote == '"' || quote == '\'' {
                value[1..].split(quote).next().unwrap_or("").to_string()
            } else {
                value.split_whitespace().next().unwrap_or("").to_string()
            });
        }
        from = i + name.len();
    }
    None
}

fn unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
}

/// `href` resolved against `base` (RFC 3986, the cases indexes use).
pub fn join(base: &str, href: &str) -> String {
    if href.contains("://") {
        return href.to_string();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("https", base));
    if let Some(h) = href.strip_prefix("//") {
        return format!("{scheme}://{h}");
    }
    let authority = rest.split('/').next().unwrap_or("");
    if href.starts_with('/') {
        return format!("{scheme}://{authority}{href}");
    }
    let path = &rest[authority.len()..];
    let path = path.split(['?', '#']).next().unwrap_or("");
    let dir = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "/",
    };
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for seg in href.split('/') {
        match seg {
            "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    // A trailing empty segment keeps `dir/`.
    let joined = parts.join("/");
    format!("{scheme}://{authority}/{joined}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pep_503_html_with_relative_links_and_fragments() {
        let body = "<html><body>\n<a href=\"../../files/six-1.17.0-py2.py3-none-any.whl#sha256=ABCD\" data-core-metadata=\"sha256=1\">six-1.17.0-py2.py3-none-any.whl</a><br/>\n<A HREF='https://cdn.example/six-1.16.0.tar.gz'>six-1.16.0.tar.gz</A>\n</body></html>";
        let files = parse("http://127.0.0.1:8080/simple/six/", "text/html", body).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(
            files[0].url,
            "http://127.0.0.1:8080/files/six-1.17.0-py2.py3-none-any.whl"
        );
        assert_eq!(files[0].sha256.as_deref(), Some("abcd"));
        assert!(files[0].metadata);
        assert_eq!(files[1].filename, "six-1.16.0.tar.gz");
        assert_eq!(files[1].url, "https://cdn.example/six-1.16.0.tar.gz");
        assert!(files[1].sha256.is_none());
    }

    #[test]
    fn pep_691_json() {
        let body = r#"{"meta":{"api-version":"1.1"},"name":"six","files":[{"filename":"six-1.17.0-py2.py3-none-any.whl","url":"/packages/six.whl","hashes":{"sha256":"AB"},"size":11050,"core-metadata":{"sha256":"x"}},{"filename":"six-1.17.0.tar.gz","url":"https://f/six.tgz","hashes":{},"core-metadata":false}]}"#;
        let files = parse(
            "https://pypi.org/simple/six/",
            "application/vnd.pypi.simple.v1+json",
            body,
        )
        .unwrap();
        assert_eq!(files[0].url, "https://pypi.org/packages/six.whl");
        assert_eq!(
            (files[0].sha256.as_deref(), files[0].size, files[0].metadata),
            (Some("ab"), Some(11050), true)
        );
        assert!(!files[1].metadata);
        assert!(parse(
            "https://x/",
            "application/vnd.pypi.simple.v1+json",
            "<html>"
        )
        .is_err());
    }

    #[test]
    fn joins() {
        assert_eq!(
            join("https://a/simple/six/", "../../x.whl"),
            "https://a/x.whl"
        );
        assert_eq!(
            join("https://a/simple/six", "x.whl"),
            "https://a/simple/x.whl"
        );
        assert_eq!(join("https://a:1/s/", "//b/x"), "https://b/x");
        assert_eq!(join("https://a/s/", "/p/x"), "https://a/p/x");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_pages_never_panic(body in "\\PC{0,300}", ct in "(text/html|application/vnd.pypi.simple.v1\\+json)") {
            let _ = parse("https://x/simple/p/", &ct, &body);
        }
    }
}
