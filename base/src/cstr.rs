//! Paths and strings as `CString`s for raw syscalls.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;

/// `s` as a NUL-terminated C string. A NUL byte inside `s` is an
/// [`io::ErrorKind::InvalidInput`] error naming the string.
pub fn cstring(s: impl AsRef<OsStr>) -> io::Result<CString> {
    let s = s.as_ref();
    CString::new(s.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} contains a NUL byte", s.to_string_lossy()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    #[test]
    fn paths_with_non_utf8_bytes_convert_and_nul_is_refused() {
        let p = OsStr::from_bytes(b"/tmp/a\xff");
        assert_eq!(cstring(p).unwrap().as_bytes(), b"/tmp/a\xff");
        assert_eq!(cstring(Path::new("/x")).unwrap().as_bytes(), b"/x");
        let e = cstring("a\0b").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
