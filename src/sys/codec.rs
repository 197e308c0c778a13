//! Small encodings venvbake needs exactly: lowercase hex sha256 digests,
//! RFC 4648 base64 (standard for cloud-config, URL-safe without padding for
//! wheel RECORD files), and the line and column of a byte offset in a text
//! (for errors that point into a profile or a lock).

use sha2::{Digest, Sha256};

/// sha256 of `bytes` as lowercase hex.
pub fn hex_sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// sha256 digest and length of everything `r` yields, read in blocks.
pub fn sha256_reader(mut r: impl std::io::Read) -> std::io::Result<(Vec<u8>, u64)> {
    let mut h = Sha256::new();
    // On the stack: no allocation per file (thousands of them, on many threads).
    let mut buf = [0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((h.finalize().to_vec(), size))
}

/// sha256 digest and length of a file.
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<(Vec<u8>, u64)> {
    sha256_reader(std::fs::File::open(path)?)
}

/// sha256 of a file as lowercase hex.
pub fn sha256_file_hex(path: &std::path::Path) -> std::io::Result<String> {
    Ok(hex(&sha256_file(path)?.0))
}

pub fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(H[usize::from(b >> 4)] as char);
        s.push(H[usize::from(b & 15)] as char);
    }
    s
}

/// Percent-encode everything but RFC 3986 unreserved characters (purls, URL userinfo).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Base64: `url_safe` uses `-_` (RECORD files), and then pads nothing.
pub fn base64(bytes: &[u8], url_safe: bool) -> String {
    let table: &[u8; 64] = if url_safe {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(table[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else if !url_safe {
                s.push('=');
            }
        }
    }
    s
}

/// The bytes of URL-safe base64 without padding (as `RECORD` writes
/// digests); `None` for anything else.
pub fn base64_url_decode(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    };
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    Some(out)
}

/// 1-based line and column of byte offset `at` in `text`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count() + 1)
        .unwrap_or(1);
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_url_round_trips() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(base64_url_decode(&base64(&bytes, true)), Some(bytes));
        }
        assert_eq!(base64_url_decode("a+b/"), None);
        assert_eq!(base64_url_decode("abcde"), None);
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (input, std, url) in [
            (&b""[..], "", ""),
            (b"f", "Zg==", "Zg"),
            (b"fo", "Zm8=", "Zm8"),
            (b"foo", "Zm9v", "Zm9v"),
            (b"foobar", "Zm9vYmFy", "Zm9vYmFy"),
            (&[0xfb, 0xff][..], "+/8=", "-_8"),
        ] {
            assert_eq!(base64(input, false), std);
            assert_eq!(base64(input, true), url);
        }
    }

    #[test]
    fn sha256_hex() {
        assert_eq!(
            hex_sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
