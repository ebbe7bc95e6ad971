//! Protocol tests of pochta-auth-proto: transcript replays and property round trips.

mod describe;
mod roundtrip;
mod transcript;
