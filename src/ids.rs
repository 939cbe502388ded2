//! Identifiers: 24-hex strings in the MongoDB ObjectId form, in every profile.
//!
//! The legacy design hands out GridFS ObjectIds as file ids, and its clients (and its own Python
//! converter and notifier, in a mixed deployment) expect that shape. Using the same form in the
//! embedded profile means an id never changes meaning when a deployment moves between profiles.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A 12-byte id: 4 bytes of Unix seconds, 5 random bytes fixed per process, a 3-byte counter.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Id([u8; 12]);

/// The input was not 24 hexadecimal digits.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("an id is 24 hexadecimal digits")]
pub struct MalformedId;

struct Generator {
    /// Random per process, so that two processes never hand out the same id in one second.
    process: [u8; 5],
    /// Starts at a random value, as ObjectId's counter does.
    counter: AtomicU32,
}

fn generator() -> &'static Generator {
    static GENERATOR: OnceLock<Generator> = OnceLock::new();
    GENERATOR.get_or_init(|| {
        let mut seed = [0u8; 9];
        getrandom::fill(&mut seed).expect("the operating system's random source is available");
        let mut process = [0u8; 5];
        process.copy_from_slice(&seed[..5]);
        let counter = u32::from_be_bytes([seed[5], seed[6], seed[7], seed[8]]);
        Generator { process, counter: AtomicU32::new(counter) }
    })
}

impl Id {
    /// A fresh id, unique across processes and ordered by creation second.
    pub fn generate() -> Self {
        let generator = generator();
        let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as u32).unwrap_or_default();
        let count = generator.counter.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&seconds.to_be_bytes());
        bytes[4..9].copy_from_slice(&generator.process);
        bytes[9..].copy_from_slice(&count[1..]);
        Id(bytes)
    }

    pub fn from_bytes(bytes: [u8; 12]) -> Self {
        Id(bytes)
    }

    pub fn bytes(&self) -> [u8; 12] {
        self.0
    }
}

impl FromStr for Id {
    type Err = MalformedId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != 24 || !text.is_ascii() {
            return Err(MalformedId);
        }
        let mut bytes = [0u8; 12];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| MalformedId)?;
        }
        Ok(Id(bytes))
    }
}

impl TryFrom<String> for Id {
    type Error = MalformedId;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Id> for String {
    fn from(id: Id) -> Self {
        id.to_string()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        let id = Id::generate();
        let text = id.to_string();
        assert_eq!(text.len(), 24);
        assert_eq!(text.parse::<Id>(), Ok(id));
    }

    #[test]
    fn consecutive_ids_differ_and_sort_by_creation() {
        let a = Id::generate();
        let b = Id::generate();
        assert_ne!(a, b);
        assert!(a.bytes()[..4] <= b.bytes()[..4]);
    }

    #[test]
    fn rejects_what_is_not_24_hex_digits() {
        for bad in [
            "",
            "abc",
            "zzzzzzzzzzzzzzzzzzzzzzzz",
            "0123456789abcdef0123456",
            "../../etc/passwd00000000",
            "é123456789abcdef012345",
        ] {
            assert_eq!(bad.parse::<Id>(), Err(MalformedId), "{bad:?}");
        }
    }
}
