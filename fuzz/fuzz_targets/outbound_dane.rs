//! DANE inputs from the network: a DNS response judged for its AD bit and TLSA records, TLSA
//! RDATA, and a server's certificate matched against TLSA records (a DER walk to the
//! SubjectPublicKeyInfo). No panic; what is parsed stays within what came in.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_outbound::dane::{spki, Tlsa};
use pochta_outbound::dnssec::{parse_response_to, Reply};

fuzz_target!(|data: &[u8]| {
    let id = data
        .get(..2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    for qtype in [52u16, 15, 1, 28] {
        if let Ok(Reply::Answer(a)) = parse_response_to(data, id, "_25._tcp.mx.example.", qtype) {
            assert!(a.tlsa.len() <= a.count);
            for t in &a.tlsa {
                let _ = t.usable();
                let _ = t.matches(data);
            }
        }
    }
    if let Some(s) = spki(data) {
        assert!(s.len() <= data.len());
    }
    if let Some((head, cert)) = data.split_first() {
        let n = usize::from(*head).min(cert.len());
        if let Some(t) = Tlsa::from_rdata(&cert[..n]) {
            let _ = t.usable();
            let _ = t.matches(&cert[n..]);
            let _ = t.to_string();
        }
    }
});
