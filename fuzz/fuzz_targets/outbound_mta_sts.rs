//! MTA-STS inputs from the network: the TXT record, the HTTPS response and the policy. No
//! panic; a parsed policy stays within the RFC 8461 limits and its MX matching is total.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_outbound::mta_sts::{
    parse_http_response, parse_policy, parse_txt, MAX_AGE_LIMIT, MAX_POLICY,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = std::str::from_utf8(data) {
        if let Some(id) = parse_txt(t) {
            assert!(!id.is_empty() && id.len() <= 32);
        }
    }
    if let Ok(body) = parse_http_response(data) {
        assert!(body.len() <= data.len());
        let _ = parse_policy(&body);
    }
    if let Ok(p) = parse_policy(data) {
        assert!(data.len() <= MAX_POLICY && p.max_age <= MAX_AGE_LIMIT);
        for host in ["a.example", "x.a.example", ""] {
            let _ = p.mx_matches(host);
        }
    }
});
