//! DNSSEC status of DNS answers for DANE (RFC 7672 §2.1): queries sent by hand (hickory-proto
//! messages) to the configured resolver with the AD bit set (RFC 6840 §5.7) and EDNS(0), over
//! UDP with a TCP retry when the answer is truncated; the answer's AD bit says whether the
//! resolver validated it. Like Postfix with `smtp_dns_support_level = dnssec`, the resolver is
//! trusted to validate: it must be local (loopback) or reached over a trusted path.
//! hickory-resolver's lookups hide the header, hence these few lines of our own.
//!
//! [`parse_response`] is pure (bytes in, verdict out) and fuzzed: the answer comes from the
//! network and is untrusted (hickory's decoder with its limits; we only read the header, the
//! question and the answer section).

use crate::dane::Tlsa;
use hickory_resolver::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::Name;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// EDNS(0) payload size we offer (the DNS flag day 2020 value).
const EDNS_PAYLOAD: u16 = 1232;

/// What a validating resolver said about one name and type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecureAnswer {
    /// The AD bit: the resolver validated the answer (or the denial) with DNSSEC.
    pub secure: bool,
    pub status: AnswerStatus,
    /// Records of the asked type in the answer section (after any CNAME).
    pub count: usize,
    /// The TLSA records among them (for a TLSA question).
    pub tlsa: Vec<Tlsa>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerStatus {
    /// Records of the type exist.
    Records,
    /// The name exists without records of the type.
    NoData,
    NxDomain,
}

/// One received datagram or TCP message, judged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Not the answer to our question (another id or question): keep waiting.
    Foreign,
    /// TC set: ask again over TCP.
    Truncated,
    Answer(SecureAnswer),
}

/// The query message: RD=1, AD=1, EDNS(0) with our payload size (DO=0: the AD bit is all we
/// read, so the signatures need not travel).
pub(crate) fn build_query(id: u16, name: &Name, qtype: RecordType) -> Result<Vec<u8>, String> {
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .set_authentic_data(true);
    m.add_query(Query::query(name.clone(), qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD).set_version(0);
    m.set_edns(edns);
    m.to_vec()
        .map_err(|e| format!("cannot encode a DNS query: {e}"))
}

/// Judges a response to query `id` for `name`/`qtype`. Err for a broken message or a
/// resolver failure (SERVFAIL, REFUSED, …): the caller treats that as a temporary failure.
pub fn parse_response(
    buf: &[u8],
    id: u16,
    name: &Name,
    qtype: RecordType,
) -> Result<Reply, String> {
    let m = Message::from_vec(buf).map_err(|e| format!("malformed DNS response: {e}"))?;
    if m.id() != id || m.message_type() != MessageType::Response {
        return Ok(Reply::Foreign);
    }
    // Name equality is case-insensitive (a resolver may echo 0x20-randomised case).
    let same = matches!(m.queries(), [q] if q.query_type() == qtype && q.name() == name);
    if !same {
        return Ok(Reply::Foreign);
    }
    if m.truncated() {
        return Ok(Reply::Truncated);
    }
    let status = match m.response_code() {
        ResponseCode::NoError => AnswerStatus::NoData,
        ResponseCode::NXDomain => AnswerStatus::NxDomain,
        rc => return Err(format!("the resolver answered {rc}")),
    };
    let mut count = 0;
    let mut tlsa = Vec::new();
    for r in m.answers().iter().filter(|r| r.record_type() == qtype) {
        count += 1;
        if let Some(RData::TLSA(t)) = r.data() {
            tlsa.push(Tlsa {
                usage: t.cert_usage().into(),
                selector: t.selector().into(),
                matching: t.matching().into(),
                data: t.cert_data().to_vec(),
            });
        }
    }
    let status = if count > 0 {
        AnswerStatus::Records
    } else {
        status
    };
    Ok(Reply::Answer(SecureAnswer {
        secure: m.authentic_data(),
        status,
        count,
        tlsa,
    }))
}

/// [`parse_response`] with the question as text and a numeric type (for the fuzz target and
/// callers without hickory types).
pub fn parse_response_to(buf: &[u8], id: u16, name: &str, qtype: u16) -> Result<Reply, String> {
    let n = Name::from_ascii(name).map_err(|e| format!("bad name {name:?}: {e}"))?;
    parse_response(buf, id, &n, RecordType::from(qtype))
}

/// Asks `servers` in turn (two rounds), each try bounded by `timeout`.
pub(crate) async fn query(
    servers: &[SocketAddr],
    timeout: Duration,
    name: &Name,
    qtype: RecordType,
) -> Result<SecureAnswer, String> {
    let mut last = "no nameservers configured".to_owned();
    for _ in 0..2 {
        for &ns in servers {
            match tokio::time::timeout(timeout, query_one(ns, name, qtype)).await {
                Ok(Ok(a)) => return Ok(a),
                Ok(Err(e)) => last = format!("{ns}: {e}"),
                Err(_) => last = format!("{ns}: timed out"),
            }
        }
    }
    Err(last)
}

fn random_id() -> u16 {
    let mut b = [0u8; 2];
    // A failing system RNG leaves a fixed id: answers are still matched by id and question.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u16::from_be_bytes(b)
}

async fn query_one(ns: SocketAddr, name: &Name, qtype: RecordType) -> Result<SecureAnswer, String> {
    let id = random_id();
    let msg = build_query(id, name, qtype)?;
    let local: SocketAddr = if ns.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let sock = tokio::net::UdpSocket::bind(local)
        .await
        .map_err(|e| e.to_string())?;
    sock.connect(ns).await.map_err(|e| e.to_string())?;
    sock.send(&msg).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).await.map_err(|e| e.to_string())?;
        match parse_response(buf.get(..n).unwrap_or_default(), id, name, qtype)? {
            Reply::Foreign => continue,
            Reply::Answer(a) => return Ok(a),
            Reply::Truncated => break,
        }
    }
    // RFC 7766: the same question over TCP, two-octet length prefix.
    let mut tcp = tokio::net::TcpStream::connect(ns)
        .await
        .map_err(|e| e.to_string())?;
    let len = u16::try_from(msg.len()).map_err(|_| "query too long".to_owned())?;
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(&msg);
    tcp.write_all(&out).await.map_err(|e| e.to_string())?;
    loop {
        let n = usize::from(tcp.read_u16().await.map_err(|e| e.to_string())?);
        let mut buf = vec![0u8; n];
        tcp.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        match parse_response(&buf, id, name, qtype)? {
            Reply::Foreign => continue,
            Reply::Answer(a) => return Ok(a),
            Reply::Truncated => return Err("truncated answer over TCP".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::rr::rdata::tlsa::{CertUsage, Matching, Selector, TLSA};
    use hickory_resolver::proto::rr::rdata::A;
    use hickory_resolver::proto::rr::Record;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn response(id: u16, q: &str, qtype: RecordType, ad: bool) -> Message {
        let mut m = Message::new();
        m.set_id(id)
            .set_message_type(MessageType::Response)
            .set_authentic_data(ad);
        m.add_query(Query::query(name(q), qtype));
        m
    }

    #[test]
    fn query_sets_ad_and_edns() {
        let q = build_query(7, &name("_25._tcp.mx.example."), RecordType::TLSA).unwrap();
        let m = Message::from_vec(&q).unwrap();
        assert!(m.authentic_data());
        assert!(m.recursion_desired());
        assert_eq!(m.extensions().as_ref().unwrap().max_payload(), EDNS_PAYLOAD);
        assert_eq!(m.queries()[0].query_type(), RecordType::TLSA);
    }

    #[test]
    fn tlsa_answer_with_ad() {
        let owner = "_25._tcp.mx.example.";
        let mut m = response(9, owner, RecordType::TLSA, true);
        let t = TLSA::new(
            CertUsage::DomainIssued,
            Selector::Spki,
            Matching::Sha256,
            vec![0xab; 32],
        );
        m.add_answer(Record::from_rdata(name(owner), 300, RData::TLSA(t)));
        let bytes = m.to_vec().unwrap();
        let Reply::Answer(a) = parse_response(&bytes, 9, &name(owner), RecordType::TLSA).unwrap()
        else {
            panic!("no answer")
        };
        assert!(a.secure);
        assert_eq!(a.status, AnswerStatus::Records);
        assert_eq!(
            a.tlsa,
            [Tlsa {
                usage: 3,
                selector: 1,
                matching: 1,
                data: vec![0xab; 32]
            }]
        );
        // Another id or another question is not ours.
        assert_eq!(
            parse_response(&bytes, 10, &name(owner), RecordType::TLSA).unwrap(),
            Reply::Foreign
        );
        assert_eq!(
            parse_response(&bytes, 9, &name("x.example."), RecordType::TLSA).unwrap(),
            Reply::Foreign
        );
        assert_eq!(
            parse_response(&bytes, 9, &name(owner), RecordType::MX).unwrap(),
            Reply::Foreign
        );
    }

    #[test]
    fn denials_truncation_and_failures() {
        let mut m = response(1, "a.example.", RecordType::A, false);
        m.set_response_code(ResponseCode::NXDomain);
        let r = parse_response(&m.to_vec().unwrap(), 1, &name("a.example."), RecordType::A);
        let Ok(Reply::Answer(a)) = r else {
            panic!("{r:?}")
        };
        assert_eq!((a.secure, a.status), (false, AnswerStatus::NxDomain));
        let mut m = response(1, "a.example.", RecordType::A, true);
        m.add_answer(Record::from_rdata(
            name("a.example."),
            60,
            RData::A(A::new(192, 0, 2, 1)),
        ));
        m.set_truncated(true);
        let r = parse_response(&m.to_vec().unwrap(), 1, &name("a.example."), RecordType::A);
        assert_eq!(r.unwrap(), Reply::Truncated);
        m.set_truncated(false);
        let r = parse_response(&m.to_vec().unwrap(), 1, &name("A.Example."), RecordType::A);
        let Ok(Reply::Answer(a)) = r else {
            panic!("{r:?}")
        };
        assert_eq!(
            (a.secure, a.status, a.count),
            (true, AnswerStatus::Records, 1)
        );
        m.set_response_code(ResponseCode::ServFail);
        let r = parse_response(&m.to_vec().unwrap(), 1, &name("a.example."), RecordType::A);
        assert!(r.is_err(), "{r:?}");
        assert!(parse_response(b"\x00\x01", 1, &name("a."), RecordType::A).is_err());
        assert!(parse_response(&[], 1, &name("a."), RecordType::A).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(0u8..=255, 0..600)) {
            let _ = parse_response(&b, 0, &name("x.example."), RecordType::TLSA);
        }

        #[test]
        fn mutated_answers_never_panic(i in 0usize..200, v in 0u8..=255) {
            let owner = "_25._tcp.mx.example.";
            let mut m = response(3, owner, RecordType::TLSA, true);
            let t = TLSA::new(CertUsage::DomainIssued, Selector::Spki, Matching::Sha256,
                vec![1; 32]);
            m.add_answer(Record::from_rdata(name(owner), 300, RData::TLSA(t)));
            let mut b = m.to_vec().unwrap();
            let n = b.len();
            b[i % n] = v;
            let _ = parse_response(&b, 3, &name(owner), RecordType::TLSA);
        }
    }
}
