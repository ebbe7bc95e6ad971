//! Sequence sets (`1:5,7,10:*`): message sequence numbers or UIDs.

use crate::cursor::{err, Cursor, PResult};

/// One end of a range: a number or `*` (the largest number in use).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqNum {
    Value(u32),
    Star,
}

impl SeqNum {
    fn resolve(self, largest: u32) -> u32 {
        match self {
            SeqNum::Value(v) => v,
            SeqNum::Star => largest,
        }
    }
}

/// A parsed sequence set; at most [`SequenceSet::MAX_RANGES`] ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SequenceSet(pub Vec<(SeqNum, SeqNum)>);

impl SequenceSet {
    pub const MAX_RANGES: usize = 10_000;

    /// Ranges with `*` replaced by `largest`, each ordered low..=high.
    pub fn ranges(&self, largest: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.0.iter().map(move |(a, b)| {
            let (a, b) = (a.resolve(largest), b.resolve(largest));
            (a.min(b), a.max(b))
        })
    }

    /// True if `n` is in the set.
    pub fn contains(&self, n: u32, largest: u32) -> bool {
        self.ranges(largest).any(|(a, b)| a <= n && n <= b)
    }

    /// True if the set uses `*`.
    pub fn has_star(&self) -> bool {
        self.0
            .iter()
            .any(|(a, b)| *a == SeqNum::Star || *b == SeqNum::Star)
    }

    /// `1:3,5` from a sorted list of numbers (for COPYUID, APPENDUID, ESEARCH ALL).
    pub fn compress(nums: &[u32]) -> String {
        let mut out = String::new();
        let mut i = 0;
        while i < nums.len() {
            let start = nums[i];
            let mut end = start;
            while i + 1 < nums.len() && nums[i + 1] == end.wrapping_add(1) {
                i += 1;
                end = nums[i];
            }
            if !out.is_empty() {
                out.push(',');
            }
            if start == end {
                out.push_str(&start.to_string());
            } else {
                out.push_str(&format!("{start}:{end}"));
            }
            i += 1;
        }
        out
    }
}

fn seq_num(c: &mut Cursor<'_>) -> PResult<SeqNum> {
    if c.eat(b'*') {
        Ok(SeqNum::Star)
    } else {
        c.nz_number().map(SeqNum::Value)
    }
}

pub(crate) fn sequence_set(c: &mut Cursor<'_>) -> PResult<SequenceSet> {
    let mut out = Vec::new();
    loop {
        if out.len() >= SequenceSet::MAX_RANGES {
            return err("Sequence set too long");
        }
        let a = seq_num(c).map_err(|_| crate::ParseError::new("Invalid sequence set"))?;
        let b = if c.eat(b':') {
            seq_num(c).map_err(|_| crate::ParseError::new("Invalid sequence set"))?
        } else {
            a
        };
        out.push((a, b));
        if !c.eat(b',') {
            break;
        }
    }
    Ok(SequenceSet(out))
}

/// True if the next bytes look like a sequence set (digits or `*`).
pub(crate) fn starts_sequence_set(c: &Cursor<'_>) -> bool {
    c.peek().is_some_and(|b| b.is_ascii_digit() || b == b'*')
}
