//! The tokenizer of message text: runs of letters and digits are words (lowercased); Chinese,
//! Japanese and Korean text has no spaces between words, so every such character is a token of
//! its own and so is every pair of neighbours. A query is tokenized the same way and all its
//! tokens must match: "世界" finds text containing 世, 界 and the pair 世界.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// Name the tokenizer is registered under.
pub const NAME: &str = "parley";

/// Longest word kept, in bytes (longer runs are cut; nobody searches for them).
const MAX_WORD: usize = 64;

/// Chinese, Japanese and Korean characters (the blocks that are written without spaces).
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF       // Hiragana, Katakana
        | 0x3400..=0x4DBF     // CJK Extension A
        | 0x4E00..=0x9FFF     // CJK Unified Ideographs
        | 0xAC00..=0xD7AF     // Hangul syllables
        | 0xF900..=0xFAFF     // CJK Compatibility Ideographs
        | 0x20000..=0x2FA1F   // CJK Extensions B.. and Compatibility Supplement
    )
}

/// The tokenizer.
#[derive(Clone, Debug, Default)]
pub struct MessageTokenizer;

/// Tokens of one text, made at once.
pub struct Tokens {
    tokens: Vec<Token>,
    next: usize,
}

/// Splits `text` into tokens as described above.
pub fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut position = 0;
    let mut word: Option<(usize, String)> = None;
    let mut prev_cjk: Option<(usize, char)> = None;
    let mut push = |out: &mut Vec<Token>, from: usize, to: usize, text: String| {
        out.push(Token {
            offset_from: from,
            offset_to: to,
            position,
            text,
            position_length: 1,
        });
        position += 1;
    };
    for (at, c) in text.char_indices() {
        let end = at + c.len_utf8();
        if is_cjk(c) {
            if let Some((from, w)) = word.take() {
                push(&mut out, from, at, w);
            }
            push(&mut out, at, end, c.to_string());
            if let Some((from, p)) = prev_cjk {
                push(&mut out, from, end, format!("{p}{c}"));
            }
            prev_cjk = Some((at, c));
        } else if c.is_alphanumeric() {
            prev_cjk = None;
            let (_, w) = word.get_or_insert_with(|| (at, String::new()));
            if w.len() < MAX_WORD {
                w.extend(c.to_lowercase());
            }
        } else {
            prev_cjk = None;
            if let Some((from, w)) = word.take() {
                push(&mut out, from, at, w);
            }
        }
    }
    if let Some((from, w)) = word.take() {
        push(&mut out, from, text.len(), w);
    }
    out
}

impl Tokenizer for MessageTokenizer {
    type TokenStream<'a> = Tokens;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Tokens {
        Tokens {
            tokens: tokens(text),
            next: 0,
        }
    }
}

impl TokenStream for Tokens {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<String> {
        tokens(s).into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn words_are_lowercased_and_cjk_split_into_characters_and_pairs() {
        assert_eq!(texts("Hello, World! 42x"), ["hello", "world", "42x"]);
        assert_eq!(
            texts("你好世界"),
            ["你", "好", "你好", "世", "好世", "界", "世界"]
        );
        assert_eq!(texts("rust编程"), ["rust", "编", "程", "编程"]);
        assert_eq!(
            texts("東京 タワー"),
            ["東", "京", "東京", "タ", "ワ", "タワ", "ー", "ワー"]
        );
        assert!(texts("  ,.!? ").is_empty());
    }
}
