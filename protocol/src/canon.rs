//! The one canonical encoding silk signs and attests: fixed-size fields as they are,
//! variable ones as a u16 big-endian length (at most [`MAX_FIELD`]) then the bytes, text as
//! UTF-8, nothing after the last field. Claims, offers, receipts and acknowledgements all
//! use it; each maps [`CanonError`] to its own error with its own check names.

/// Largest length-prefixed field accepted.
pub const MAX_FIELD: usize = 1024;

/// Why bytes are not a canonical encoding; `field` names where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CanonError {
    /// The input ended inside the field.
    Truncated(&'static str),
    /// The field's length is over [`MAX_FIELD`].
    TooLong(&'static str, usize),
    /// A text field is not UTF-8.
    NotUtf8(&'static str),
    /// Bytes follow the last field.
    Trailing(usize),
}

impl std::fmt::Display for CanonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CanonError::Truncated(field) => write!(f, "ends inside `{field}`"),
            CanonError::TooLong(field, len) => {
                write!(f, "`{field}` is {len} bytes, more than {MAX_FIELD}")
            }
            CanonError::NotUtf8(field) => write!(f, "`{field}` is not UTF-8"),
            CanonError::Trailing(n) => write!(f, "{n} bytes follow the last field"),
        }
    }
}

/// Appends a length-prefixed field.
pub(crate) fn put_var(
    out: &mut Vec<u8>,
    bytes: &[u8],
    field: &'static str,
) -> Result<(), CanonError> {
    if bytes.len() > MAX_FIELD {
        return Err(CanonError::TooLong(field, bytes.len()));
    }
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Reads the encoding strictly, field by field.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// Reads `bytes` from `at` (past a magic the caller checked).
    pub(crate) fn new(bytes: &'a [u8], at: usize) -> Self {
        Self { bytes, at }
    }

    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], CanonError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(CanonError::Truncated(field))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], CanonError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, CanonError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn var(&mut self, field: &'static str) -> Result<&'a [u8], CanonError> {
        let len = u16::from_be_bytes(self.array(field)?) as usize;
        if len > MAX_FIELD {
            return Err(CanonError::TooLong(field, len));
        }
        self.take(len, field)
    }

    pub(crate) fn text(&mut self, field: &'static str) -> Result<String, CanonError> {
        let b = self.var(field)?;
        String::from_utf8(b.to_vec()).map_err(|_| CanonError::NotUtf8(field))
    }

    /// Fails unless every byte was read.
    pub(crate) fn end(&self) -> Result<(), CanonError> {
        match self.bytes.len() - self.at {
            0 => Ok(()),
            n => Err(CanonError::Trailing(n)),
        }
    }
}
