//! Tokens of packetdrill's script language, following the rules of its
//! flex scanner (`lexer.l`): the longest match wins and, between matches of
//! equal length, float before integer before hex before word. So `1460` is
//! an integer, `abcd1234` a word, `0.100` and `.1` floats, and `0...0.1`
//! is the integer `0`, an ellipsis and the float `0.1`.

use super::parser::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// Decimal integer, possibly negative (`-1`).
    Int(i64),
    /// `0x1f`
    Hex(i64),
    /// A decimal with a point, kept as text so times convert exactly.
    Float(String),
    /// `[A-Za-z0-9_]+` that is not a number.
    Word(String),
    /// `"..."` without the quotes (escapes kept as written).
    Str(String),
    /// `` `...` `` without the backticks: a shell command.
    BackQuoted(String),
    /// `%{ ... }%` without the delimiters: a Python snippet.
    Code(String),
    /// `192.0.2.1`
    Ipv4(String),
    /// `--name` without the dashes: a command-line option in the script.
    OptionName(String),
    /// `...`
    Ellipsis,
    /// Any other single character: `( ) [ ] { } < > , = | + - : ~ * . ;`
    Char(char),
    Eof,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub line: usize,
    pub col: usize,
    /// Byte range in the source.
    pub start: usize,
    pub end: usize,
}

impl Tok {
    /// The token as written, for notes and error messages.
    pub fn text(&self) -> String {
        match self {
            Tok::Int(v) => v.to_string(),
            Tok::Hex(v) => format!("{v:#x}"),
            Tok::Float(s) | Tok::Word(s) | Tok::Ipv4(s) => s.clone(),
            Tok::Str(s) => format!("\"{s}\""),
            Tok::BackQuoted(s) => format!("`{s}`"),
            Tok::Code(s) => format!("%{{{s}}}%"),
            Tok::OptionName(s) => format!("--{s}"),
            Tok::Ellipsis => "...".into(),
            Tok::Char(c) => c.to_string(),
            Tok::Eof => "end of file".into(),
        }
    }
}

struct Lexer<'a> {
    src: &'a [u8],
    text: &'a str,
    pos: usize,
    line_starts: Vec<usize>,
}

pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, ParseError> {
    let mut line_starts = vec![0];
    line_starts.extend(
        text.bytes()
            .enumerate()
            .filter(|&(_, b)| b == b'\n')
            .map(|(i, _)| i + 1),
    );
    let mut lx = Lexer {
        src: text.as_bytes(),
        text,
        pos: 0,
        line_starts,
    };
    let mut out = Vec::new();
    loop {
        let t = lx.next()?;
        let eof = t.tok == Tok::Eof;
        out.push(t);
        if eof {
            return Ok(out);
        }
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl Lexer<'_> {
    fn line_col(&self, pos: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|&s| s <= pos);
        let start = self.line_starts[line - 1];
        (line, self.text[start..pos].chars().count() + 1)
    }

    fn err(&self, pos: usize, message: impl Into<String>) -> ParseError {
        let (line, col) = self.line_col(pos);
        ParseError {
            line,
            col,
            message: message.into(),
        }
    }

    fn at(&self, i: usize) -> u8 {
        self.src.get(i).copied().unwrap_or(0)
    }

    fn digits(&self, mut i: usize) -> usize {
        while self.at(i).is_ascii_digit() {
            i += 1;
        }
        i
    }

    /// Length of `-?[0-9]*\.[0-9]+` at `pos`, or 0.
    fn float_len(&self, pos: usize) -> usize {
        let mut i = pos;
        if self.at(i) == b'-' {
            i += 1;
        }
        i = self.digits(i);
        if self.at(i) != b'.' || !self.at(i + 1).is_ascii_digit() {
            return 0;
        }
        self.digits(i + 1) - pos
    }

    /// Length of `-?[0-9]+` at `pos`, or 0.
    fn int_len(&self, pos: usize) -> usize {
        let i = if self.at(pos) == b'-' { pos + 1 } else { pos };
        let end = self.digits(i);
        if end == i {
            0
        } else {
            end - pos
        }
    }

    /// Length of `0x[0-9a-fA-F]+` at `pos`, or 0.
    fn hex_len(&self, pos: usize) -> usize {
        if self.at(pos) != b'0' || self.at(pos + 1) != b'x' {
            return 0;
        }
        let mut i = pos + 2;
        while self.at(i).is_ascii_hexdigit() {
            i += 1;
        }
        if i == pos + 2 {
            0
        } else {
            i - pos
        }
    }

    fn word_len(&self, pos: usize) -> usize {
        let mut i = pos;
        while is_word_byte(self.at(i)) {
            i += 1;
        }
        i - pos
    }

    /// Length of `[0-9]+(\.[0-9]+){3}` at `pos`, or 0.
    fn ipv4_len(&self, pos: usize) -> usize {
        let mut i = pos;
        for part in 0..4 {
            if part > 0 {
                if self.at(i) != b'.' {
                    return 0;
                }
                i += 1;
            }
            let end = self.digits(i);
            if end == i {
                return 0;
            }
            i = end;
        }
        i - pos
    }

    /// Skips whitespace and comments.
    fn skip(&mut self) -> Result<(), ParseError> {
        loop {
            let b = self.at(self.pos);
            if b == b' ' || b == b'\t' || b == b'\n' || b == b'\r' {
                self.pos += 1;
            } else if b == b'/' && self.at(self.pos + 1) == b'/' {
                while self.pos < self.src.len() && self.src[self.pos] != b'\n' {
                    self.pos += 1;
                }
            } else if b == b'/' && self.at(self.pos + 1) == b'*' {
                match self.text[self.pos + 2..].find("*/") {
                    Some(end) => self.pos += 2 + end + 2,
                    None => return Err(self.err(self.pos, "unterminated /* comment")),
                }
            } else {
                return Ok(());
            }
        }
    }

    /// Finds the end of a quoted run starting after `open`, honouring
    /// backslash escapes; returns the position of the closing quote.
    fn quoted_end(&self, open: usize, quote: u8) -> Option<usize> {
        let mut i = open + 1;
        while i < self.src.len() {
            match self.src[i] {
                b'\\' => i += 2,
                b if b == quote => return Some(i),
                _ => i += 1,
            }
        }
        None
    }

    /// A `%{ code }%` block, a "string" or a `command` starting at `start`
    /// (whose byte is `b`), moving past it; `None` if none starts there.
    fn delimited(&mut self, start: usize, b: u8) -> Result<Option<Tok>, ParseError> {
        if b == b'%' && self.at(start + 1) == b'{' {
            let Some(end) = self.text[start + 2..].find("}%") else {
                return Err(self.err(start, "unterminated %{ code block"));
            };
            let body = self.text[start + 2..start + 2 + end]
                .trim_matches([' ', '\t'])
                .to_string();
            self.pos = start + 2 + end + 2;
            return Ok(Some(Tok::Code(body)));
        }
        if b != b'"' && b != b'`' {
            return Ok(None);
        }
        let Some(close) = self.quoted_end(start, b) else {
            let what = if b == b'"' { "string" } else { "backtick command" };
            return Err(self.err(start, format!("unterminated {what}")));
        };
        let body = self.text[start + 1..close].to_string();
        self.pos = close + 1;
        Ok(Some(if b == b'"' {
            Tok::Str(body)
        } else {
            Tok::BackQuoted(body)
        }))
    }

    fn next(&mut self) -> Result<Token, ParseError> {
        self.skip()?;
        let start = self.pos;
        let (line, col) = self.line_col(start);
        let make = |tok, end| Token {
            tok,
            line,
            col,
            start,
            end,
        };
        if start >= self.src.len() {
            return Ok(make(Tok::Eof, start));
        }
        let b = self.src[start];
        if let Some(tok) = self.delimited(start, b)? {
            return Ok(make(tok, self.pos));
        }
        if b == b'.' && self.at(start + 1) == b'.' && self.at(start + 2) == b'.' {
            self.pos = start + 3;
            return Ok(make(Tok::Ellipsis, self.pos));
        }
        if b == b'-' && self.at(start + 1) == b'-' && is_word_byte(self.at(start + 2)) {
            let len = self.word_len(start + 2);
            self.pos = start + 2 + len;
            return Ok(make(
                Tok::OptionName(self.text[start + 2..self.pos].to_string()),
                self.pos,
            ));
        }
        // Numbers and words: longest match, ties in flex's rule order.
        let float = self.float_len(start);
        let int = self.int_len(start);
        let hex = self.hex_len(start);
        let word = self.word_len(start);
        let ipv4 = self.ipv4_len(start);
        let best = float.max(int).max(hex).max(word);
        if ipv4 > best {
            self.pos = start + ipv4;
            return Ok(make(Tok::Ipv4(self.text[start..self.pos].to_string()), self.pos));
        }
        if best > 0 {
            self.pos = start + best;
            let s = &self.text[start..self.pos];
            let tok = if float == best {
                Tok::Float(s.to_string())
            } else if int == best {
                Tok::Int(
                    s.parse()
                        .map_err(|_| self.err(start, format!("integer out of range: {s}")))?,
                )
            } else if hex == best {
                Tok::Hex(
                    i64::from_str_radix(&s[2..], 16)
                        .map_err(|_| self.err(start, format!("hex integer out of range: {s}")))?,
                )
            } else {
                Tok::Word(s.to_string())
            };
            return Ok(make(tok, self.pos));
        }
        let c = self.text[start..].chars().next().expect("not at end");
        self.pos = start + c.len_utf8();
        Ok(make(Tok::Char(c), self.pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s)
            .unwrap()
            .into_iter()
            .map(|t| t.tok)
            .filter(|t| *t != Tok::Eof)
            .collect()
    }

    #[test]
    fn numbers_words_and_times() {
        assert_eq!(
            toks("+0...0.1 read"),
            vec![
                Tok::Char('+'),
                Tok::Int(0),
                Tok::Ellipsis,
                Tok::Float("0.1".into()),
                Tok::Word("read".into())
            ]
        );
        assert_eq!(
            toks("+.1...0.200"),
            vec![
                Tok::Char('+'),
                Tok::Float(".1".into()),
                Tok::Ellipsis,
                Tok::Float("0.200".into())
            ]
        );
        assert_eq!(toks("1460 0x1f abcd1234 8a"), {
            vec![
                Tok::Int(1460),
                Tok::Hex(31),
                Tok::Word("abcd1234".into()),
                Tok::Word("8a".into()),
            ]
        });
        assert_eq!(
            toks("= -1 EAGAIN"),
            vec![Tok::Char('='), Tok::Int(-1), Tok::Word("EAGAIN".into())]
        );
        assert_eq!(toks("192.0.2.1"), vec![Tok::Ipv4("192.0.2.1".into())]);
        assert_eq!(
            toks("S. 1:1(0)"),
            vec![
                Tok::Word("S".into()),
                Tok::Char('.'),
                Tok::Int(1),
                Tok::Char(':'),
                Tok::Int(1),
                Tok::Char('('),
                Tok::Int(0),
                Tok::Char(')')
            ]
        );
    }

    #[test]
    fn comments_strings_commands_code() {
        let t = toks("// c\n/* multi\nline */ \"a\\\"b\" `cmd\n two` %{ x = 1 }% --tolerance_usecs=10000");
        assert_eq!(
            t,
            vec![
                Tok::Str("a\\\"b".into()),
                Tok::BackQuoted("cmd\n two".into()),
                Tok::Code("x = 1".into()),
                Tok::OptionName("tolerance_usecs".into()),
                Tok::Char('='),
                Tok::Int(10000)
            ]
        );
    }

    #[test]
    fn positions() {
        let t = tokenize("0 a\n  +1 b").unwrap();
        assert_eq!((t[2].line, t[2].col), (2, 3));
        assert_eq!((t[4].line, t[4].col), (2, 6));
    }

    #[test]
    fn unterminated() {
        let e = tokenize("0 a\n /* x").unwrap_err();
        assert_eq!((e.line, e.col), (2, 2));
        assert!(tokenize("`abc").is_err());
        assert!(tokenize("%{ abc").is_err());
    }
}
