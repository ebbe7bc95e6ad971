use super::*;

fn qp_decode(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            if b.get(i + 1..i + 3) == Some(b"\r\n") {
                i += 3;
                continue;
            }
            let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(h, 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[test]
fn plain_8bit_body_becomes_quoted_printable() {
    let msg = "From: a@x\r\nSubject: hi\r\nContent-Type: text/plain; charset=utf-8\r\n\
               Content-Transfer-Encoding: 8bit\r\n\r\nGrüße = Straße \r\n.line\r\n";
    let out = downgrade(msg.as_bytes()).unwrap();
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(!has_8bit(&out));
    assert!(text.contains("Content-Transfer-Encoding: quoted-printable\r\n"));
    assert!(!text.contains("8bit"));
    assert!(text.contains("MIME-Version: 1.0\r\n"));
    assert!(text.contains("Gr=C3=BC=C3=9Fe =3D Stra=C3=9Fe=20\r\n.line\r\n"));
    let body = text.split("\r\n\r\n").nth(1).unwrap();
    assert_eq!(
        qp_decode(body.as_bytes()),
        "Grüße = Straße \r\n.line\r\n".as_bytes()
    );
}

#[test]
fn seven_bit_message_is_untouched() {
    let msg = b"Subject: x\r\n\r\nplain\r\n";
    assert_eq!(downgrade(msg).unwrap(), msg);
}

#[test]
fn eight_bit_header_is_unconvertible() {
    assert!(downgrade("Subject: Grüße\r\n\r\nbody ü\r\n".as_bytes()).is_err());
}

#[test]
fn multipart_converts_only_8bit_parts() {
    let msg = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\
               Content-Transfer-Encoding: 8bit\r\n\r\npreamble\r\n--b1\r\n\
               Content-Type: text/plain\r\n\r\nascii part\r\n--b1\r\n\
               Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\
               \r\nüber\r\n--b1--\r\nepilogue\r\n";
    let out = String::from_utf8(downgrade(msg.as_bytes()).unwrap()).unwrap();
    let want = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\
                Content-Transfer-Encoding: 7bit\r\n\r\npreamble\r\n--b1\r\n\
                Content-Type: text/plain\r\n\r\nascii part\r\n--b1\r\n\
                Content-Type: text/plain; charset=utf-8\r\n\
                Content-Transfer-Encoding: quoted-printable\r\n\r\n=C3=BCber\r\n--b1--\r\n\
                epilogue\r\n";
    assert_eq!(out, want);
}

#[test]
fn long_lines_get_soft_breaks() {
    let body = "é".repeat(100);
    let msg = format!("Subject: x\r\n\r\n{body}\r\n");
    let out = downgrade(msg.as_bytes()).unwrap();
    for line in out.split(|&c| c == b'\n') {
        assert!(line.len() <= 77, "{}", String::from_utf8_lossy(line));
    }
    let text = String::from_utf8(out).unwrap();
    let b = text.split("\r\n\r\n").nth(1).unwrap();
    assert_eq!(qp_decode(b.as_bytes()), format!("{body}\r\n").as_bytes());
}

#[test]
fn encoded_part_with_8bit_and_deep_nesting_fail() {
    let msg = "Content-Transfer-Encoding: base64\r\n\r\nü\r\n";
    assert!(downgrade(msg.as_bytes()).is_err());
    let mut deep = String::new();
    for _ in 0..(MAX_DEPTH + 2) {
        deep.push_str("Content-Type: message/rfc822\r\n\r\n");
    }
    deep.push_str("x: y\r\n\r\nü\r\n");
    assert!(downgrade(deep.as_bytes()).is_err());
}

proptest::proptest! {
    /// Any input: no panic; a success is 7-bit and has no line over 998 octets.
    #[test]
    fn output_is_seven_bit(
        parts in proptest::collection::vec(
            proptest::sample::select(vec![
                "Content-Type: multipart/mixed; boundary=b\r\n", "--b\r\n", "--b--\r\n",
                "\r\n", "Content-Type: message/rfc822\r\n", "text ", "ü", "=", "\n", "\r",
                "Content-Transfer-Encoding: 8bit\r\n", "x: y\r\n",
            ]),
            0..40,
        )
    ) {
        let msg: String = parts.concat();
        if let Ok(out) = downgrade(msg.as_bytes()) {
            proptest::prop_assert!(!has_8bit(&out));
        }
    }
}
