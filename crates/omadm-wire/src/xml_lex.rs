//! The XML tokenizer under [`crate::xml::XmlReader`]: markup and character
//! data of an already UTF-8-checked document, borrowed from it.
//!
//! ```text
//!  &str ─▶ Lexer::next ─▶ Start{name, attrs, empty} | End{name} | Text | CData | Eof
//!                         (declaration, PIs, comments, DOCTYPE skipped)
//! ```
//!
//! It does what SyncML needs and no more, so that decoding costs a few
//! instructions per byte (issue #2): `memchr` to the next `<`, one scan to
//! the `>` of a tag (quotes respected), names and attributes handed out as
//! slices. Entity references and line ends are resolved by [`unescape`] and
//! [`normalize_line_ends`], only for text that holds `&` or CR. Nesting,
//! end-tag names and namespaces are the reader's business.

use std::borrow::Cow;

/// One piece of markup or character data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Token<'a> {
    /// `<name attrs>` or `<name attrs/>` (`empty`).
    Start {
        /// The qualified name, as written.
        name: &'a str,
        /// Where the local name starts in `name`: 0 without a prefix, else
        /// just after the first `:`.
        local: usize,
        /// Everything between the name and `>` (or `/>`).
        attrs: &'a str,
        /// An empty-element tag.
        empty: bool,
    },
    /// `</name>`: the qualified name, trailing whitespace removed.
    End {
        /// The name.
        name: &'a str,
        /// Whether it is the name the reader said it expects.
        expected: bool,
    },
    /// Character data as written; `plain` when it holds neither `&` nor CR,
    /// so that it needs no resolving.
    Text {
        /// The characters.
        raw: &'a str,
        /// No reference and no CR in `raw`.
        plain: bool,
    },
    /// The content of `<![CDATA[...]]>`.
    CData(&'a str),
    /// The end of the input.
    Eof,
}

/// Not well-formed markup: where, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LexError {
    /// Offset in the lexer's input.
    pub(crate) at: usize,
    pub(crate) message: String,
}

/// A cursor over a document or fragment.
#[derive(Debug)]
pub(crate) struct Lexer<'a> {
    input: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(input: &'a str) -> Lexer<'a> {
        Lexer { input, pos: 0 }
    }

    /// Offset just after the last token.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// When the input goes on with plain character data (no reference, no
    /// CR, no NUL, no markup) of at most `max_len` bytes and then exactly
    /// `</qname>`: that text, with the lexer moved past the end tag.
    /// Otherwise `None`, and nothing is consumed.
    ///
    /// Most elements of a DM message are such leaves (`<CmdID>3</CmdID>`):
    /// this reads one in one step instead of a text and an end-tag token.
    pub(crate) fn leaf_text(&mut self, qname: &str, max_len: usize) -> Option<&'a str> {
        let start = self.pos;
        let rest = self.input.as_bytes().get(start..)?;
        let len = find_text_stop(rest)?;
        if len > max_len || rest.get(len) != Some(&b'<') {
            return None;
        }
        let after = rest.get(len + 1..)?;
        let name = after.strip_prefix(b"/")?;
        if name.get(qname.len()) != Some(&b'>') || !starts_with_short(name, qname.as_bytes()) {
            return None;
        }
        self.pos = start + len + qname.len() + 3;
        Some(self.slice(start, start + len))
    }

    /// Moves past whitespace of at most `max_len` bytes when markup (`<`)
    /// follows it; otherwise consumes nothing.
    pub(crate) fn skip_blank(&mut self, max_len: usize) {
        let rest = self.input.as_bytes().get(self.pos..).unwrap_or_default();
        let len = rest
            .iter()
            .position(|&b| !is_space(b))
            .unwrap_or(rest.len());
        if len <= max_len && rest.get(len) == Some(&b'<') {
            self.pos += len;
        }
    }

    /// The next token; declarations, PIs, comments and DOCTYPE are skipped.
    /// `expected` is the qualified name of the innermost open element (empty
    /// if none), which an end tag is compared with.
    pub(crate) fn next_token(&mut self, expected: &str) -> Result<Token<'a>, LexError> {
        loop {
            let bytes = self.input.as_bytes();
            let start = self.pos;
            let Some(&first) = bytes.get(start) else {
                return Ok(Token::Eof);
            };
            if first != b'<' {
                return Ok(self.text(start));
            }
            match bytes.get(start + 1) {
                Some(b'/') => return self.end_tag(start, expected),
                Some(b'?') => self.skip_past(start, start + 2, "?>", "processing instruction")?,
                Some(b'!') => {
                    let rest = bytes.get(start..).unwrap_or_default();
                    if rest.starts_with(b"<!--") {
                        self.skip_past(start, start + 4, "-->", "comment")?;
                    } else if rest.starts_with(b"<![CDATA[") {
                        let from = start + 9;
                        let end = find(bytes, from, b"]]>")
                            .ok_or_else(|| unclosed(start, "CDATA section"))?;
                        self.pos = end + 3;
                        return Ok(Token::CData(self.slice(from, end)));
                    } else if rest
                        .get(..9)
                        .is_some_and(|d| d.eq_ignore_ascii_case(b"<!DOCTYPE"))
                    {
                        self.doctype(start)?;
                    } else {
                        return Err(LexError {
                            at: start,
                            message: "`<!` starts neither a comment, CDATA nor DOCTYPE".into(),
                        });
                    }
                }
                _ => return self.start_tag(start),
            }
        }
    }

    /// `input[from..to]`, both ends next to ASCII markup, so on character
    /// boundaries (the fallback is never taken).
    fn slice(&self, from: usize, to: usize) -> &'a str {
        self.input.get(from..to).unwrap_or_default()
    }

    /// Character data from `start` to the next `<`. Most text in a DM
    /// message is a short value or indentation: a byte loop finds its end
    /// (and whether it needs resolving) faster than a vectorized search
    /// could start, which takes over for long text (base64 Data).
    fn text(&mut self, start: usize) -> Token<'a> {
        const SHORT: usize = 64;
        let bytes = self.input.as_bytes();
        let mut plain = true;
        let mut end = None;
        for (i, &b) in bytes.iter().enumerate().skip(start).take(SHORT) {
            match b {
                b'<' => {
                    end = Some(i);
                    break;
                }
                b'&' | b'\r' => plain = false,
                _ => {}
            }
        }
        let end = end.unwrap_or_else(|| {
            let from = (start + SHORT).min(bytes.len());
            let rest = bytes.get(from..).unwrap_or_default();
            let end = memchr::memchr(b'<', rest).map_or(bytes.len(), |i| from + i);
            let tail = bytes.get(from..end).unwrap_or_default();
            plain = plain && memchr::memchr2(b'&', b'\r', tail).is_none();
            end
        });
        self.pos = end;
        Token::Text {
            raw: self.slice(start, end),
            plain,
        }
    }

    fn start_tag(&mut self, start: usize) -> Result<Token<'a>, LexError> {
        let bytes = self.input.as_bytes();
        let name_start = start + 1;
        let Some((len, local, stop)) = scan_name(bytes.get(name_start..).unwrap_or_default())
        else {
            return Err(unclosed(start, "start tag"));
        };
        let i = name_start + len;
        let name = self.slice(name_start, i);
        if name.is_empty() {
            return Err(LexError {
                at: start,
                message: "a start tag without a name".into(),
            });
        }
        // `<name>` and `<name/>`, most tags of a message.
        match (stop, bytes.get(i + 1)) {
            (b'>', _) => {
                self.pos = i + 1;
                return Ok(Token::Start {
                    name,
                    local,
                    attrs: "",
                    empty: false,
                });
            }
            (b'/', Some(b'>')) => {
                self.pos = i + 2;
                return Ok(Token::Start {
                    name,
                    local,
                    attrs: "",
                    empty: true,
                });
            }
            (b'/', _) => {
                return Err(LexError {
                    at: start,
                    message: format!("malformed start tag <{name}/..."),
                })
            }
            _ => {}
        }
        // Attributes: the `>` that ends the tag, skipping quoted values.
        let mut j = i;
        let gt = loop {
            let rest = bytes.get(j..).unwrap_or_default();
            let Some(k) = memchr::memchr3(b'>', b'"', b'\'', rest) else {
                return Err(unclosed(start, "start tag"));
            };
            let at = j + k;
            match bytes.get(at) {
                Some(b'>') => break at,
                Some(&quote) => {
                    let after = bytes.get(at + 1..).unwrap_or_default();
                    let close = memchr::memchr(quote, after)
                        .ok_or_else(|| unclosed(start, "attribute value"))?;
                    j = at + 1 + close + 1;
                }
                None => return Err(unclosed(start, "start tag")),
            }
        };
        self.pos = gt + 1;
        let attrs = self.slice(i, gt);
        let (attrs, empty) = match attrs.strip_suffix('/') {
            Some(a) => (a, true),
            None => (attrs, false),
        };
        Ok(Token::Start {
            name,
            local,
            attrs,
            empty,
        })
    }

    /// `</name>`; `expected` is the name the reader expects, which most
    /// end tags repeat exactly (no whitespace): compared at once.
    fn end_tag(&mut self, start: usize, expected: &str) -> Result<Token<'a>, LexError> {
        let bytes = self.input.as_bytes();
        let name_start = start + 2;
        let rest = bytes.get(name_start..).unwrap_or_default();
        if !expected.is_empty()
            && rest.get(expected.len()) == Some(&b'>')
            && rest.starts_with(expected.as_bytes())
        {
            self.pos = name_start + expected.len() + 1;
            return Ok(Token::End {
                name: self.slice(name_start, name_start + expected.len()),
                expected: true,
            });
        }
        let Some(gt) = memchr::memchr(b'>', rest) else {
            return Err(unclosed(start, "end tag"));
        };
        self.pos = name_start + gt + 1;
        let name = self
            .slice(name_start, name_start + gt)
            .trim_end_matches(is_space_char);
        if name.is_empty() || rest.first().copied().is_some_and(is_space) {
            return Err(LexError {
                at: start,
                message: "an end tag without a name".into(),
            });
        }
        Ok(Token::End {
            name,
            expected: name == expected,
        })
    }

    /// Moves past the `terminator` of the construct that starts at `start`;
    /// the search starts at `from`.
    fn skip_past(
        &mut self,
        start: usize,
        from: usize,
        terminator: &str,
        what: &str,
    ) -> Result<(), LexError> {
        let end = find(self.input.as_bytes(), from, terminator.as_bytes())
            .ok_or_else(|| unclosed(start, what))?;
        self.pos = end + terminator.len();
        Ok(())
    }

    /// Skips `<!DOCTYPE ...>`, with an internal subset in brackets and
    /// quoted literals that may hold `>`.
    fn doctype(&mut self, start: usize) -> Result<(), LexError> {
        let bytes = self.input.as_bytes();
        let mut quote = None;
        let mut depth = 0usize;
        for (i, &b) in bytes.iter().enumerate().skip(start + 9) {
            match (quote, b) {
                (Some(q), b) if b == q => quote = None,
                (Some(_), _) => {}
                (None, b'"' | b'\'') => quote = Some(b),
                (None, b'[') => depth += 1,
                (None, b']') => depth = depth.saturating_sub(1),
                (None, b'>') if depth == 0 => {
                    self.pos = i + 1;
                    return Ok(());
                }
                _ => {}
            }
        }
        Err(unclosed(start, "DOCTYPE"))
    }
}

fn unclosed(at: usize, what: &str) -> LexError {
    LexError {
        at,
        message: format!("the input ends inside a {what}"),
    }
}

/// The first `needle` in `haystack[from..]`, as an offset in `haystack`.
/// The needles are the short terminators `?>`, `-->` and `]]>`: a search
/// for their last byte, then a look back, costs less than setting up a
/// substring searcher for every declaration and comment.
fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let (&last, head) = needle.split_last()?;
    let mut at = from.checked_add(head.len())?;
    loop {
        let end = at + memchr::memchr(last, haystack.get(at..)?)?;
        let start = end - head.len();
        if haystack.get(start..end) == Some(head) {
            return Some(start);
        }
        at = end + 1;
    }
}

/// The offset of the first `<`, `&`, CR or NUL in `bytes`: what ends plain
/// character data. Eight bytes at a time (SWAR: a byte equal to `c` is a
/// zero byte of `x ^ c…c`, found by the borrow of subtracting 1 from each
/// byte; the lowest flagged byte is exact), then a vectorized search past
/// the first 64 bytes (base64 Data).
fn find_text_stop(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const SHORT: usize = 64;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let head = bytes.get(..SHORT).unwrap_or(bytes);
    let mut chunks = head.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let x = u64::from_le_bytes(word);
        let found = zero_byte(x ^ (ONES * u64::from(b'<')))
            | zero_byte(x ^ (ONES * u64::from(b'&')))
            | zero_byte(x ^ (ONES * u64::from(b'\r')))
            | zero_byte(x);
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    if let Some(i) = chunks
        .remainder()
        .iter()
        .position(|&b| matches!(b, b'<' | b'&' | b'\r' | 0))
    {
        return Some(at + i);
    }
    let tail = bytes.get(head.len()..)?;
    let end = memchr::memchr3(b'<', b'&', b'\r', tail).unwrap_or(tail.len());
    let end = memchr::memchr(0, tail.get(..end)?).unwrap_or(end);
    (end < tail.len()).then_some(head.len() + end)
}

/// The element name at the start of `bytes` (a start tag's, after `<`):
/// its length up to `>`, `/` or whitespace, where its local name starts (0
/// without a prefix, else just after the first `:`), and the byte that
/// ended it. `None` if nothing ends it.
///
/// Eight bytes at a time: a name is mostly letters (0x41 and up), so a word
/// flags its bytes below 0x40 (bits 6 and 7 clear, exactly) and only those
/// are looked at.
fn scan_name(bytes: &[u8]) -> Option<(usize, usize, u8)> {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut local = 0;
    let mut at = 0;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let x = u64::from_le_bytes(word);
        let mut low = !(x | (x << 1)) & HIGH;
        while low != 0 {
            let k = (low.trailing_zeros() / 8) as usize;
            match word.get(k).copied() {
                Some(b) if b == b'>' || b == b'/' || is_space(b) => {
                    return Some((at + k, local, b))
                }
                Some(b':') if local == 0 => local = at + k + 1,
                _ => {}
            }
            low &= low - 1;
        }
        at += 8;
    }
    for (k, &b) in chunks.remainder().iter().enumerate() {
        match b {
            b'>' | b'/' | b' ' | b'\t' | b'\r' | b'\n' => return Some((at + k, local, b)),
            b':' if local == 0 => local = at + k + 1,
            _ => {}
        }
    }
    None
}

/// `haystack` starts with `needle` (a short element name): a byte loop, as
/// a `memcmp` call costs more than the comparison.
fn starts_with_short(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.len() >= needle.len() && haystack.iter().zip(needle).all(|(a, b)| a == b)
}

/// XML 1.0 `S`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_space_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// The namespace declarations among the attributes of a start tag:
/// `(prefix, value)` with an empty prefix for `xmlns`. Values are raw (no
/// reference is resolved: a namespace name holding one is not one we know).
/// Malformed attribute text ends the list, as a lenient parser would drop
/// what it cannot read.
pub(crate) fn namespace_declarations(attrs: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = attrs;
    std::iter::from_fn(move || loop {
        let (key, value, after) = next_attribute(rest)?;
        rest = after;
        match key.strip_prefix("xmlns") {
            Some("") => return Some(("", value)),
            Some(prefix) => match prefix.strip_prefix(':') {
                Some(prefix) => return Some((prefix, value)),
                None => continue,
            },
            None => continue,
        }
    })
}

/// `key = "value"` at the start of `s` (after whitespace), and the rest.
fn next_attribute(s: &str) -> Option<(&str, &str, &str)> {
    let b = s.as_bytes();
    let skip_space = |mut i: usize| {
        while b.get(i).copied().is_some_and(is_space) {
            i += 1;
        }
        i
    };
    let key_start = skip_space(0);
    let mut i = key_start;
    while b.get(i).is_some_and(|&c| c != b'=' && !is_space(c)) {
        i += 1;
    }
    let key = s.get(key_start..i)?;
    i = skip_space(i);
    if b.get(i) != Some(&b'=') {
        return None;
    }
    i = skip_space(i + 1);
    let quote = *b.get(i).filter(|&&q| q == b'"' || q == b'\'')?;
    let value_start = i + 1;
    let close = value_start + b.get(value_start..)?.iter().position(|&c| c == quote)?;
    Some((key, s.get(value_start..close)?, s.get(close + 1..)?))
}

/// XML 1.0 §2.11: CR LF and a lone CR become LF, so a message means the
/// same to us as to any other parser (libwbxml's expat). A CR written as
/// `&#13;` is a reference, resolved after this, and stays.
pub(crate) fn normalize_line_ends(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\r') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('\r') {
        out.push_str(rest.get(..i).unwrap_or_default());
        out.push('\n');
        rest = rest.get(i + 1..).unwrap_or_default();
        rest = rest.strip_prefix('\n').unwrap_or(rest);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Resolves the predefined entities (`lt gt amp apos quot`) and character
/// references (`&#N;`, `&#xN;`) of character data. Anything else after `&`
/// is an error, as is a reference to NUL or to no character.
pub(crate) fn unescape(raw: Cow<'_, str>) -> Result<Cow<'_, str>, String> {
    let Some(first) = raw.find('&') else {
        return Ok(raw);
    };
    let mut out = String::with_capacity(raw.len());
    out.push_str(raw.get(..first).unwrap_or_default());
    let mut rest = raw.get(first..).unwrap_or_default();
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or_default());
        let after = rest.get(amp + 1..).unwrap_or_default();
        let semi = after.find(';').ok_or_else(|| {
            let shown: String = rest.chars().skip(amp).take(12).collect();
            format!("unterminated entity reference {shown:?}")
        })?;
        let name = after.get(..semi).unwrap_or_default();
        match name {
            "lt" => out.push('<'),
            "gt" => out.push('>'),
            "amp" => out.push('&'),
            "apos" => out.push('\''),
            "quot" => out.push('"'),
            _ => out.push(char_ref(name)?),
        }
        rest = after.get(semi + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// The character of `#N` or `#xN`.
fn char_ref(name: &str) -> Result<char, String> {
    let bad = || {
        let shown: String = name.chars().take(12).collect();
        format!("unknown entity or bad character reference &{shown};")
    };
    let num = name.strip_prefix('#').ok_or_else(bad)?;
    let (digits, radix) = match num.strip_prefix('x') {
        Some(hex) => (hex, 16),
        None => (num, 10),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    u32::from_str_radix(digits, radix)
        .ok()
        .filter(|&code| code != 0)
        .and_then(char::from_u32)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(input: &str) -> Result<Vec<Token<'_>>, LexError> {
        let mut lexer = Lexer::new(input);
        let mut out = Vec::new();
        loop {
            match lexer.next_token("a:B")? {
                Token::Eof => return Ok(out),
                t => out.push(t),
            }
        }
    }

    #[test]
    fn markup_and_text() {
        let doc =
            "<?xml version='1.0'?>\n<!DOCTYPE SyncML PUBLIC \"-//a>b//EN\" [<!ENTITY x 'y>'>]>\
                   <a:B xmlns:a='u>v' c=\"'\"><!-- x -- y --><C/>t&amp;<![CDATA[<z>]]></a:B >";
        assert_eq!(
            tokens(doc).unwrap(),
            [
                Token::Text {
                    raw: "\n",
                    plain: true
                },
                Token::Start {
                    name: "a:B",
                    local: 2,
                    attrs: " xmlns:a='u>v' c=\"'\"",
                    empty: false
                },
                Token::Start {
                    name: "C",
                    local: 0,
                    attrs: "",
                    empty: true
                },
                Token::Text {
                    raw: "t&amp;",
                    plain: false
                },
                Token::CData("<z>"),
                Token::End {
                    name: "a:B",
                    expected: true
                },
            ]
        );
    }

    #[test]
    fn unclosed_constructs_are_errors_at_their_start() {
        for (doc, at) in [
            ("<a", 0),
            ("x<a b='>", 1),
            ("<a></a", 3),
            ("<!-- ->", 0),
            ("<![CDATA[x]>", 0),
            ("<?pi", 0),
            ("<!DOCTYPE [>", 0),
            ("<!x>", 0),
            ("<>", 0),
            ("</>", 0),
            ("< a>", 0),
            ("<a/b>", 0),
            ("</ a>", 0),
        ] {
            let err = tokens(doc).unwrap_err();
            assert_eq!(err.at, at, "{doc}: {err:?}");
        }
    }

    // Past the first 64 bytes the text is scanned by memchr: the end and
    // whether it needs resolving must come out the same.
    #[test]
    fn long_text_is_scanned_like_short_text() {
        for (text, plain) in [
            ("x".repeat(200), true),
            (format!("{}&amp;", "x".repeat(100)), false),
            (format!("{}\r", "x".repeat(63)), false),
            (format!("&lt;{}", "x".repeat(100)), false),
        ] {
            let doc = format!("{text}<a/>");
            assert_eq!(
                tokens(&doc).unwrap()[0],
                Token::Text { raw: &text, plain },
                "{text}"
            );
        }
    }

    #[test]
    fn leaf_text_takes_plain_text_and_the_expected_end_tag_only() {
        let long = "x".repeat(100);
        for (input, max, want) in [
            ("1</a>", 10, Some("1")),
            ("</a>", 10, Some("")),
            (&format!("{long}</a>"), 100, Some(long.as_str())),
            (&format!("{long}</a>"), 99, None),
            (&format!("{long}&amp;</a>"), 200, None),
            ("1&amp;</a>", 10, None),
            ("1\r</a>", 10, None),
            ("1\0</a>", 10, None),
            ("1</ab>", 10, None),
            ("1</a >", 10, None),
            ("1<b/></a>", 10, None),
            ("1</a", 10, None),
            ("1", 10, None),
        ] {
            let mut lexer = Lexer::new(input);
            assert_eq!(lexer.leaf_text("a", max), want, "{input}");
            let consumed = want.map_or(0, |_| input.len());
            assert_eq!(lexer.position(), consumed, "{input}");
        }
    }

    // The word-at-a-time search must agree with a plain byte search at
    // every position, near every stop byte, short and long.
    #[test]
    fn find_text_stop_agrees_with_a_byte_search() {
        for len in [0, 1, 7, 8, 9, 15, 16, 63, 64, 65, 100, 200] {
            for stop in [b'<', b'&', b'\r', 0, 0x80, b'>'] {
                for at in [0, 1, 7, 8, 63, 64, 65, 150] {
                    let mut bytes = vec![b'x'; len];
                    if let Some(b) = bytes.get_mut(at) {
                        *b = stop;
                    }
                    // Bytes just above and below a stop must not match.
                    bytes.extend_from_slice(&[b'<' + 1, b'&' - 1, b'\r' + 1, 1]);
                    let want = bytes
                        .iter()
                        .position(|&b| matches!(b, b'<' | b'&' | b'\r' | 0));
                    assert_eq!(
                        find_text_stop(&bytes),
                        want,
                        "len {len} stop {stop} at {at}"
                    );
                }
            }
        }
    }

    // The word-at-a-time name scan against a byte loop: every stop byte at
    // every position, with and without a prefix, with digits and non-ASCII.
    #[test]
    fn scan_name_agrees_with_a_byte_loop() {
        fn slow(bytes: &[u8]) -> Option<(usize, usize, u8)> {
            let mut local = 0;
            for (i, &b) in bytes.iter().enumerate() {
                match b {
                    b'>' | b'/' | b' ' | b'\t' | b'\r' | b'\n' => return Some((i, local, b)),
                    b':' if local == 0 => local = i + 1,
                    _ => {}
                }
            }
            None
        }
        let names = [
            "A",
            "LocURI",
            "m:MaxMsgSize",
            "a1-b.c:d:e",
            "Caf\u{e9}0123456789",
            "",
        ];
        for name in names {
            for stop in [&b">"[..], b"/>", b" a='1'>", b"\t>", b"\r", b"\n", b""] {
                let input = [name.as_bytes(), stop].concat();
                assert_eq!(scan_name(&input), slow(&input), "{input:?}");
            }
        }
    }

    #[test]
    fn find_finds_the_first_terminator_after_from() {
        assert_eq!(find(b"<?x?>", 2, b"?>"), Some(3));
        assert_eq!(find(b"<!-- a > -- > --->", 4, b"-->"), Some(15));
        assert_eq!(find(b"]]>]]>", 1, b"]]>"), Some(3));
        assert_eq!(find(b"<?x>", 2, b"?>"), None);
        assert_eq!(find(b"?>", 5, b"?>"), None);
        assert_eq!(find(b"", 0, b"?>"), None);
    }

    #[test]
    fn skip_blank_skips_whitespace_before_markup_only() {
        for (input, max, skipped) in [
            (" \n\t\r<a>", 10, 4),
            ("<a>", 10, 0),
            ("  x<a>", 10, 0),
            ("   <a>", 2, 0),
            ("   ", 10, 0),
        ] {
            let mut lexer = Lexer::new(input);
            lexer.skip_blank(max);
            assert_eq!(lexer.position(), skipped, "{input:?}");
        }
    }

    #[test]
    fn namespace_declarations_only() {
        let decls: Vec<_> =
            namespace_declarations(" a='1' xmlns = \"x\" xmlnsfoo='z' xmlns:m='y' bad").collect();
        assert_eq!(decls, [("", "x"), ("m", "y")]);
    }

    #[test]
    fn references_and_line_ends() {
        assert_eq!(
            unescape("a&lt;&#60;&#x3C;&quot;&apos;&gt;&amp;b".into()).unwrap(),
            "a<<<\"'>&b"
        );
        for bad in [
            "&nbsp;", "&#0;", "&#xD800;", "&#-1;", "&#+1;", "&#X41;", "&", "&#;",
        ] {
            assert!(unescape(bad.into()).is_err(), "{bad}");
        }
        assert_eq!(normalize_line_ends("a\r\nb\rc\n"), "a\nb\nc\n");
    }
}
