//! Fixed-length byte strings written as hex in policy files.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Exactly `N` bytes, written in a policy as `2 * N` hex digits (an optional `0x` prefix
/// is allowed). A wrong length is an error that names both lengths, so a SHA-256 pasted
/// where a SHA-384 belongs is caught when the policy loads, not when it silently never
/// matches.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HexBytes<const N: usize>(pub [u8; N]);

/// Why text is not a [`HexBytes`] value.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HexError {
    /// Not hex digits.
    #[error("not hex ({0})")]
    NotHex(#[from] hex::FromHexError),
    /// Hex of the wrong length.
    #[error("expected {expected} bytes ({} hex digits), found {found} bytes", 2 * .expected)]
    WrongLength {
        /// The length the rule needs.
        expected: usize,
        /// The length given.
        found: usize,
    },
}

impl<const N: usize> HexBytes<N> {
    /// Parses `2 * N` hex digits.
    pub fn parse(text: &str) -> Result<Self, HexError> {
        let digits = text.trim();
        let digits = digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
            .unwrap_or(digits);
        let bytes = hex::decode(digits)?;
        let array: [u8; N] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| HexError::WrongLength {
                expected: N,
                found: bytes.len(),
            })?;
        Ok(Self(array))
    }
}

impl<const N: usize> fmt::Debug for HexBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl<const N: usize> fmt::Display for HexBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl<const N: usize> Serialize for HexBytes<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de, const N: usize> Deserialize<'de> for HexBytes<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct HexVisitor<const N: usize>;
        impl<const N: usize> Visitor<'_> for HexVisitor<N> {
            type Value = HexBytes<N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a string of {} hex digits", 2 * N)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                HexBytes::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(HexVisitor::<N>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_and_without_prefix() {
        assert_eq!(HexBytes::<2>::parse("0xabCD").unwrap().0, [0xab, 0xcd]);
        assert_eq!(HexBytes::<2>::parse("abcd").unwrap().0, [0xab, 0xcd]);
    }

    #[test]
    fn wrong_length_names_both_lengths() {
        let e = HexBytes::<48>::parse(&"00".repeat(32)).unwrap_err();
        assert_eq!(
            e,
            HexError::WrongLength {
                expected: 48,
                found: 32
            }
        );
        let e = e.to_string();
        assert!(
            e.contains("expected 48 bytes (96 hex digits)") && e.contains("found 32"),
            "{e}"
        );
    }

    #[test]
    fn rejects_non_hex() {
        assert!(matches!(
            HexBytes::<1>::parse("zz"),
            Err(HexError::NotHex(_))
        ));
    }
}
