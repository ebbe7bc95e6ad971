//! The SMTP reply parser fed arbitrary bytes in arbitrary pieces: no panic, replies have a
//! valid code and bounded lines, and splitting the input never changes the result.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_smtp_client::{ReplyParser, MAX_LINES};

fn all(pieces: &[&[u8]]) -> Vec<Result<String, String>> {
    let mut p = ReplyParser::new();
    let mut out = Vec::new();
    for piece in pieces {
        p.feed(piece);
        while let Some(r) = p.next_reply() {
            match r {
                Ok(r) => {
                    assert!((200..=599).contains(&r.code()));
                    assert!(!r.lines().is_empty() && r.lines().len() <= MAX_LINES);
                    out.push(Ok(r.to_string()));
                }
                Err(e) => {
                    out.push(Err(e.to_string()));
                    return out;
                }
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let whole = all(&[data]);
    let cut = data.first().map_or(0, |&b| b as usize % (data.len() + 1));
    let (a, b) = data.split_at(cut);
    let split = all(&[a, b]);
    // Errors are reported at the first bad line either way; replies before it match.
    let n = whole.len().min(split.len());
    assert_eq!(whole[..n.saturating_sub(1)], split[..n.saturating_sub(1)]);
});
