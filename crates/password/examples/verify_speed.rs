//! Verifications per second for a few schemes (one thread):
//! `cargo run --release -p pochta-password --example verify_speed`.

use pochta_password::{generate, Scheme, StoredPassword};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for scheme in [
        Scheme::Plain,
        Scheme::Ssha512,
        Scheme::Sha512Crypt,
        Scheme::Sha256Crypt,
        Scheme::BlfCrypt,
        Scheme::Pbkdf2,
        Scheme::ScramSha256,
        Scheme::Argon2id,
    ] {
        let stored = StoredPassword::parse(&generate(scheme, b"secret", "", None)?, scheme, true)?;
        let start = Instant::now();
        let mut n = 0u32;
        while start.elapsed().as_millis() < 1000 {
            if !stored.verify(b"secret", "")? {
                return Err("verification failed".into());
            }
            n += 1;
        }
        let per_sec = f64::from(n) / start.elapsed().as_secs_f64();
        println!("{:<14} {per_sec:>12.1} verifications/s", scheme.name());
    }
    Ok(())
}
