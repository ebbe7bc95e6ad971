//! CRAM-MD5 (RFC 2195) keys in Dovecot's precomputed form: the MD5 states after the HMAC
//! outer (key ^ opad) and inner (key ^ ipad) blocks, so the password itself need not be stored.

use md5::{Digest, Md5};
use std::fmt;

/// HMAC-MD5 key material: MD5 chaining states after one 64-byte block each.
#[derive(Clone, PartialEq, Eq)]
pub struct CramMd5Key {
    outer: [u32; 4],
    inner: [u32; 4],
}

/// MD5's initial chaining value.
const MD5_IV: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

impl CramMd5Key {
    /// Precompute from a cleartext password (keys longer than 64 bytes are hashed first, as
    /// HMAC requires).
    pub(crate) fn from_password(password: &[u8]) -> CramMd5Key {
        let mut key = [0u8; 64];
        if password.len() > 64 {
            key[..16].copy_from_slice(&Md5::digest(password));
        } else {
            key[..password.len()].copy_from_slice(password);
        }
        let mut ipad = [0u8; 64];
        let mut opad = [0u8; 64];
        for i in 0..64 {
            ipad[i] = key[i] ^ 0x36;
            opad[i] = key[i] ^ 0x5c;
        }
        let mut inner = MD5_IV;
        md5::block_api::compress(&mut inner, &[ipad]);
        let mut outer = MD5_IV;
        md5::block_api::compress(&mut outer, &[opad]);
        CramMd5Key { outer, inner }
    }

    /// From Dovecot's 32-byte context: outer A,B,C,D then inner A,B,C,D, each little-endian.
    pub(crate) fn from_context(raw: &[u8]) -> Option<CramMd5Key> {
        if raw.len() != 32 {
            return None;
        }
        let mut words = [0u32; 8];
        for (w, c) in words.iter_mut().zip(raw.chunks_exact(4)) {
            *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        Some(CramMd5Key {
            outer: [words[0], words[1], words[2], words[3]],
            inner: [words[4], words[5], words[6], words[7]],
        })
    }

    /// Dovecot's 32-byte context (what `{CRAM-MD5}` stores, hex-encoded).
    pub(crate) fn to_context(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, w) in self.outer.iter().chain(self.inner.iter()).enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// HMAC-MD5(password, challenge): the digest a CRAM-MD5 client sends (before hex).
    pub fn hmac(&self, challenge: &[u8]) -> [u8; 16] {
        let inner = md5_continue(self.inner, challenge);
        md5_continue(self.outer, &inner)
    }
}

/// Finish an MD5 computation whose first 64-byte block is already folded into `state`.
fn md5_continue(mut state: [u32; 4], data: &[u8]) -> [u8; 16] {
    let mut blocks = data.chunks_exact(64);
    for b in &mut blocks {
        let mut block = [0u8; 64];
        block.copy_from_slice(b);
        md5::block_api::compress(&mut state, &[block]);
    }
    let rest = blocks.remainder();
    let total_bits = (64u64 + data.len() as u64).wrapping_mul(8);
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let tail_len = if rest.len() < 56 { 64 } else { 128 };
    tail[tail_len - 8..tail_len].copy_from_slice(&total_bits.to_le_bytes());
    for b in tail[..tail_len].chunks_exact(64) {
        let mut block = [0u8; 64];
        block.copy_from_slice(b);
        md5::block_api::compress(&mut state, &[block]);
    }
    let mut out = [0u8; 16];
    for (i, w) in state.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}

impl fmt::Debug for CramMd5Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CramMd5Key(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, KeyInit, Mac};

    fn reference(key: &[u8], msg: &[u8]) -> [u8; 16] {
        let mut m = <Hmac<Md5> as KeyInit>::new_from_slice(key).unwrap();
        m.update(msg);
        m.finalize().into_bytes().into()
    }

    #[test]
    fn matches_hmac_crate() {
        for klen in [0usize, 1, 6, 63, 64, 65, 200] {
            for mlen in [0usize, 1, 55, 56, 63, 64, 65, 119, 120, 300] {
                let key: Vec<u8> = (0..klen).map(|i| i as u8).collect();
                let msg: Vec<u8> = (0..mlen).map(|i| (i * 7) as u8).collect();
                let k = CramMd5Key::from_password(&key);
                assert_eq!(
                    k.hmac(&msg),
                    reference(&key, &msg),
                    "klen {klen} mlen {mlen}"
                );
                let k2 = CramMd5Key::from_context(&k.to_context()).unwrap();
                assert_eq!(k2, k);
            }
        }
    }

    #[test]
    fn rfc2195_example() {
        // RFC 2195 §2: user tim, password tanstaaftanstaaf.
        let k = CramMd5Key::from_password(b"tanstaaftanstaaf");
        let d = k.hmac(b"<1896.697170952@postoffice.reston.mci.net>");
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "b913a602c7eda7a495b4e6e7334d3890");
    }
}
