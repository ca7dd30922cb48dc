//! PCI addresses (`DDDD:BB:DD.F`), as sysfs names devices.

use std::fmt;
use std::str::FromStr;

/// A PCI function address. Displays in sysfs' full form, `0000:41:00.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddr {
    /// PCI domain (segment).
    pub domain: u16,
    /// Bus.
    pub bus: u8,
    /// Device (0..32).
    pub device: u8,
    /// Function (0..8).
    pub function: u8,
}

/// Why a PCI address did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a PCI address (expected DDDD:BB:DD.F or BB:DD.F in hex, e.g. 0000:41:00.0)")]
pub struct BadPciAddr(pub String);

impl FromStr for PciAddr {
    type Err = BadPciAddr;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadPciAddr(s.to_string());
        let parts: Vec<&str> = s.split(':').collect();
        let (domain, bus, devfn) = match parts.as_slice() {
            [d, b, df] => (*d, *b, *df),
            [b, df] => ("0000", *b, *df),
            _ => return Err(bad()),
        };
        let (dev, func) = devfn.split_once('.').ok_or_else(bad)?;
        let hex = |t: &str, max_len: usize| {
            if t.is_empty() || t.len() > max_len || !t.chars().all(|c| c.is_ascii_hexdigit()) {
                None
            } else {
                u32::from_str_radix(t, 16).ok()
            }
        };
        let domain = hex(domain, 4).ok_or_else(bad)?;
        let bus = hex(bus, 2).ok_or_else(bad)?;
        let device = hex(dev, 2).filter(|d| *d < 32).ok_or_else(bad)?;
        let function = hex(func, 1).filter(|f| *f < 8).ok_or_else(bad)?;
        Ok(PciAddr {
            domain: domain as u16,
            bus: bus as u8,
            device: device as u8,
            function: function as u8,
        })
    }
}

impl fmt::Display for PciAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_and_short_forms() {
        let a: PciAddr = "0000:41:00.0".parse().unwrap();
        assert_eq!(a.to_string(), "0000:41:00.0");
        let b: PciAddr = "c1:1f.7".parse().unwrap();
        assert_eq!(b.to_string(), "0000:c1:1f.7");
        let c: PciAddr = "000A:FF:00.1".parse().unwrap();
        assert_eq!(c.to_string(), "000a:ff:00.1");
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "41:00",
            "0000:41:20.0",
            "0000:41:00.8",
            "x:41:00.0",
            "00000:41:00.0",
            "1:2:3:4.0",
            "41:00.0 ",
        ] {
            assert!(s.parse::<PciAddr>().is_err(), "{s:?}");
        }
    }
}
