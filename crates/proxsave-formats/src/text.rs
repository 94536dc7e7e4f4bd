//! The text escaping PVE uses for free text inside colon-separated files (`user.cfg` comments
//! and names, `datacenter.cfg` description lines): `encode_text` / `decode_text` of
//! `PVE::ParseUtils`.
//!
//! Encoding percent-escapes (upper-case hex) every UTF-8 byte that is a control character,
//! `%`, `:` or not ASCII; decoding turns every `%XX` back into its byte (other `%` are kept)
//! and reads the bytes as UTF-8, invalid sequences becoming U+FFFD.
//!
//! ```
//! use proxsave_formats::text::{decode_text, encode_text};
//! assert_eq!(encode_text("Ops: oncall 100%"), "Ops%3A oncall 100%25");
//! assert_eq!(decode_text("Web%20frontend"), "Web frontend");
//! assert_eq!(decode_text(&encode_text("zürich\n")), "zürich\n");
//! ```

/// Percent-escapes control characters, `%`, `:` and non-ASCII bytes.
pub fn encode_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        let safe = matches!(b, 0x20..=0x24 | 0x26..=0x39 | 0x3b..=0x7e);
        if safe {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (any case), then reads the bytes as UTF-8 (lossy).
pub fn decode_text(data: &str) -> String {
    let bytes = data.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert_eq!(encode_text("a:b%c\té"), "a%3Ab%25c%09%C3%A9");
        assert_eq!(decode_text("100%"), "100%");
        assert_eq!(decode_text("%zz%4"), "%zz%4");
        assert_eq!(decode_text("%3a%3A"), "::");
        assert_eq!(decode_text("%FF"), "\u{FFFD}");
    }

    proptest! {
        #[test]
        fn round_trip(s in "\\PC*|[\\x00-\\x7f]*") {
            let e = encode_text(&s);
            prop_assert!(e.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b':'));
            prop_assert!(e.split('%').skip(1).all(|p| p.len() >= 2));
            prop_assert_eq!(decode_text(&e), s);
        }

        #[test]
        fn decode_never_panics(s in "(%|[0-9a-fA-F]|\\PC){0,20}") {
            let _ = decode_text(&s);
        }
    }
}
